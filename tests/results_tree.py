"""A small evaluated tree for figure/report tests: synthetic data, three simulated methods, results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cosalbench import demo
from cosalbench.datasets import synth
from cosalbench.metrics.evaluate import evaluate_predictions

SPEC = synth.SynthSpec(name="Mini", n_groups=3, images_per_group=4, height=48, width=64, seed=3)


@dataclass(frozen=True)
class Tree:
    data_root: Path
    pred_root: Path
    results: Path
    documents: list[dict]


def make_tree(root: Path, protocol: str = "pysodmetrics") -> Tree:
    """Write the data, the maps of ``demo.SIMULATED`` and their result documents under ``root``."""
    data_root, pred_root, results = root / "data", root / "preds", root / "results"
    synth.write_dataset(data_root, SPEC)
    demo.write_simulated_predictions(pred_root, SPEC)
    docs = evaluate_predictions(
        pred_root, [SPEC.name], data_root=data_root, protocol=protocol, out=results, progress=False
    )
    return Tree(data_root, pred_root, results, docs)
