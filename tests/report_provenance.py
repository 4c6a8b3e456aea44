"""Hand-written result documents with a ``provenance`` object, for the seed and training-set tests."""

from __future__ import annotations

from pathlib import Path

from tests.test_report_docs import table_doc, write_doc

RECIPE = "ab" * 32


def provenance(
    seed: int | None, train_sets: tuple[str, ...] = ("COCO-SEG",), model: str = "gconet", **changes
) -> dict:
    """A provenance object as train/predict/evaluate record it (every key of the contract)."""
    return {
        "model": model,
        "recipe_sha256": RECIPE,
        "train_sets": list(train_sets),
        "backbone_weights": {"file": "vgg16.pth", "sha256": "cd" * 32},
        "input_size": 224,
        "seed": seed,
        "steps": 1000 + (seed or 0),  # the chosen checkpoint's step may differ between seeds
        "checkpoint_rule": "best validation Sm",
        "checkpoint": {"file": f"seed{seed}/best.pth", "sha256": f"{seed or 0:02d}" * 32},
        **changes,
    }


def seeded_doc(method: str, dataset: str, values: dict, seed: int | None, **prov) -> dict:
    """``table_doc`` with a provenance of ``seed`` (keyword arguments change the provenance)."""
    return {**table_doc(method, dataset, values), "provenance": provenance(seed, **prov)}


def write_seeded(root: Path, doc: dict) -> Path:
    """Write ``doc`` under ``root/seed<k>/<method>/<dataset>.json`` (``root/<method>/...`` unseeded),
    the layout of evaluating ``train-reference --seeds`` runs one by one."""
    seed = (doc.get("provenance") or {}).get("seed")
    return write_doc(root if seed is None else root / f"seed{seed}", doc)
