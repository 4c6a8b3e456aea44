"""Readers of the fixtures a port's tests compare with (``tests/fixtures/<model>/``, see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def official_outputs(folder: Path) -> dict[str, np.ndarray]:
    """Every array of ``official_outputs.npz``, loaded."""
    with np.load(folder / "official_outputs.npz") as data:
        return {key: data[key] for key in data.files}


def official_keys(folder: Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``state_dict_keys.json`` as ``(key, shape, dtype)`` in the official state dict's order."""
    document = json.loads((folder / "state_dict_keys.json").read_text())
    return [(key, tuple(shape), dtype) for key, shape, dtype in document["keys"]]


def assert_pngs_match_official(
    summary: dict, ours: Path, references: Path, n_images: int, n_references: int
) -> None:
    """``predict_datasets`` wrote a map of each of the ``n_images`` images of ``Tiny`` (``summary``), and every
    official PNG under ``references`` is within one grey level of ours at the same relative path under ``ours``."""
    from cosalbench import io

    counts = summary["datasets"]["Tiny"]
    assert (counts["images"], counts["maps"], counts["written"], counts["kept"]) == (
        n_images,
        n_images,
        n_images,
        0,
    )
    official = sorted(references.rglob("*.png"))
    assert len(official) == n_references
    for reference in official:
        mine, theirs = io.read_gray(ours / reference.relative_to(references)), io.read_gray(reference)
        assert mine.shape == theirs.shape
        assert int(np.abs(mine.astype(int) - theirs.astype(int)).max()) <= 1


def predict_seeded(model: str, state: dict, recipe: dict, data: Path, out: Path) -> dict:
    """Save ``state`` as a cosalbench checkpoint of ``model`` with ``recipe`` and run ``predict_datasets`` on
    the ``Tiny`` set of ``data`` into ``out`` (on the CPU); its summary."""
    import torch

    from reference_models.predict import predict_datasets

    checkpoint = out.parent / f"{model}-seeded.pth"
    torch.save({"model_name": model, "recipe": recipe, "model": state, "backbone": "seeded"}, checkpoint)
    return predict_datasets(checkpoint, model, ["Tiny"], data, out, device="cpu", progress=False)
