"""Hand-written result documents with a ``provenance`` object and profile documents, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_report_docs import table_doc, write_doc

RECIPE = "ab" * 32
# a GCoNet profile on a GPU with the fields 'cosalbench profile' writes (the real one is checked against it)
HAND_WRITTEN = {
    "model": "gconet", "device": "cuda:0", "device_name": "NVIDIA H200", "threads": 16, "torch": "2.13.0",
    "dtype": "fp32", "size": 224, "group_size": 16, "params": 18_359_016, "params_inference": 16_831_684,
    "flops_per_group": 16 * 20_340_000_000, "gflops_per_image": 20.34, "warmup": 3, "repeats": 10,
    "latency_ms": {"median": 40.0, "mean": 41.0, "min": 39.5}, "ms_per_image": 2.5, "images_per_s": 400.0,
    "peak_memory_mib": 2100.0, "memory_kind": "cuda_max_allocated",
}  # fmt: skip


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


def write_profile(folder: Path, name: str, **changes) -> Path:
    path = folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**HAND_WRITTEN, **changes}))
    return path
