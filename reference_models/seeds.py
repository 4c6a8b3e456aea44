"""Several seeds of one recipe: ``train-reference MODEL --seeds 0,1,2 --out runs/x``.

Each seed is a full, ordinary run directory ``<out>/seed<k>/`` (resumable on its own and by rerunning the
same command); under torchrun every seed runs in turn on all ranks, in one process group. The seeds share
the recipe, so they share the validation split too (its seed is ``validation.seed``). When all are done,
``<out>/seeds.json`` holds each seed's final and best figures and their mean and standard deviation.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosalbench import io
from cosalbench.errors import CosalbenchError
from reference_models.train import Distributed, resolve_device, run_training

SUMMARY = "seeds.json"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct non-negative integers, or a one-line error."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise CosalbenchError(
            None, f"--seeds {text!r}: expected comma-separated non-negative integers", "e.g. --seeds 0,1,2"
        )
    seeds = [int(part) for part in parts]
    if len(set(seeds)) != len(seeds):
        raise CosalbenchError(None, f"--seeds {text!r}: a seed is repeated", "name each seed once")
    return seeds


def seed_folder(out: Path, seed: int) -> Path:
    """The run directory of ``seed``: ``<out>/seed<k>``."""
    return Path(out) / f"seed{seed}"


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of the defined values (sample std; null below two values)."""
    defined = [float(value) for value in values if value is not None]
    return {
        "mean": statistics.fmean(defined) if defined else None,
        "std": statistics.stdev(defined) if len(defined) > 1 else None,
        "n": len(defined),
    }


def seed_row(seed: int, summary: dict) -> dict[str, Any]:
    """One seed's figures: steps, last-quarter loss, and the validation values of its final and best weights."""
    checked = summary.get("validation") or {}
    return {
        "seed": seed,
        "out": str(Path(summary["final"]).parent),
        "steps": summary["steps"],
        "loss_last_quarter": summary["loss_last_quarter"],
        "final_value": checked.get("final_value"),
        "best_value": checked.get("best_value"),
        "best_step": checked.get("best_step"),
    }


def train_seeds(
    cfg: dict, out: str | Path, seeds: Sequence[int], resume: bool = True, progress: bool = True
) -> dict[str, Any]:
    """One training of ``cfg`` per seed into ``<out>/seed<k>/``, in turn; returns the summary that
    ``<out>/seeds.json`` holds (written by the main process)."""
    out = Path(out)
    dist = Distributed()
    device = resolve_device(str(cfg["device"]), dist.local_rank)
    dist.start(device)
    try:
        runs = [
            run_training({**cfg, "seed": seed}, seed_folder(out, seed), dist, device, resume, progress)
            for seed in seeds
        ]
    finally:
        dist.stop()
    rows = [seed_row(seed, summary) for seed, summary in zip(seeds, runs, strict=True)]
    validation = runs[0].get("validation") or {}
    summary = {
        "model": cfg["model"],
        "seeds": list(seeds),
        "recipe_sha256": runs[0]["provenance"]["recipe_sha256"] if dist.main else None,
        "validation_rule": validation.get("rule"),
        "metric": validation.get("metric"),
        "runs": rows,
        "final_value": _spread([row["final_value"] for row in rows]),
        "best_value": _spread([row["best_value"] for row in rows]),
        "loss_last_quarter": _spread([row["loss_last_quarter"] for row in rows]),
    }
    if dist.main:
        io.write_json(out / SUMMARY, summary)
    return summary
