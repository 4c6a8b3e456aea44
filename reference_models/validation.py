"""The validation split: whole groups held out from the training set that choose the best checkpoint.

The recipe's ``validation`` section (``reference_models.schema.VALIDATION_KEYS``) names how many groups
to hold out (a fraction, a count, or 0 for none), the seed of their choice, how often to evaluate and the
measure. :func:`hold_out` draws the groups from the sorted group names with that seed alone -- the same
groups for every training seed, rank and resume -- removes them from the training set, records them in
``<out>/validation.json`` and returns a :class:`Validator`. A known test set (the registry's
``kind: test``) is never a validation source.

:meth:`Validator.evaluate` predicts each held-out group whole, as ``predict`` does (eval mode, fp32, maps
resized back to each image's original size and stored as uint8), and scores them against the original
masks with cosalbench's own metrics (``cosalbench.metrics``), image mean. It runs without drawing from
any random generator and leaves the model in training mode, so a resumed run stays bit-exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from cosalbench import io
from cosalbench.datasets.registry import lookup
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.aggregate import aggregate
from cosalbench.metrics.protocols import get_protocol
from reference_models.data import GroupDataset, to_tensor_batch

RECORD = "validation.json"
MIN_TRAINING_GROUPS = 2
METRIC_NAMES = {
    "sm": "S-measure",
    "maxfm": "max F-measure",
    "meanfm": "mean F-measure",
    "maxem": "max E-measure",
    "meanem": "mean E-measure",
    "mae": "MAE",
}
LOWER_IS_BETTER = frozenset({"mae"})


def held_out_count(value: float, total: int) -> int:
    """Groups to hold out of ``total``: 0 (off), a fraction in (0, 1) rounded half up (at least 1), or a
    whole count >= 1; refused when it leaves fewer than two training groups."""
    if value == 0:
        return 0
    if value < 1:
        count = max(1, math.floor(value * total + 0.5))
    elif float(value).is_integer():
        count = int(value)
    else:
        raise CosalbenchError(
            None,
            f"recipe key 'validation.groups': bad value {value!r}",
            "expected a fraction below 1, a whole number of groups, or 0 (no validation)",
        )
    if total - count < MIN_TRAINING_GROUPS:
        raise CosalbenchError(
            None,
            f"validation.groups={value:g} holds out {count} of the {total} training groups, "
            f"leaving fewer than {MIN_TRAINING_GROUPS} to train on",
            "lower validation.groups, or 0 to train on every group",
        )
    return count


def choose(dataset: GroupDataset, spec: dict) -> dict[str, list[int]]:
    """Held-out group -> indices of its images that are scored, drawn from ``spec["seed"]`` alone."""
    rng = np.random.default_rng(int(spec["seed"]))
    count = held_out_count(float(spec["groups"]), len(dataset.groups))
    picked = sorted(dataset.groups[int(index)] for index in rng.permutation(len(dataset.groups))[:count])
    limit = spec.get("images_per_group")
    chosen = {}
    for group in picked:
        size = len(dataset.items[group])
        if limit is None or size <= int(limit):
            chosen[group] = list(range(size))
        else:
            chosen[group] = sorted(int(i) for i in rng.choice(size, int(limit), replace=False))
    return chosen


def refuse_test_set(dataset: GroupDataset) -> None:
    """A validation split is never drawn from a test set."""
    info = lookup(dataset.name)
    if info is not None and info.kind == "test":
        raise CosalbenchError(
            dataset.data_root / "images" / dataset.name,
            f"{info.name} is a test set: checkpoints are never chosen on a test set",
            "train on a training set (DUTS_class, COCO-SEG, COCO9213), or set validation.groups=0",
        )


@dataclass
class Validator:
    """The held-out groups of one run and how they are scored."""

    dataset: GroupDataset  # the held-out groups only
    images: dict[str, list[int]]
    spec: dict

    @property
    def every(self) -> int | None:
        return int(self.spec["every"]) if self.spec.get("every") else None

    @property
    def n_images(self) -> int:
        return sum(len(indices) for indices in self.images.values())

    @property
    def rule(self) -> str:
        """The checkpoint rule of ``best.pth``, in words."""
        when = f"every {self.every} steps" if self.every else "at the end of every epoch"
        return (
            f"best validation {METRIC_NAMES[self.spec['metric']]} (image mean, {self.spec['protocol']} "
            f"protocol) on {len(self.images)} held-out training groups ({self.n_images} images), "
            f"evaluated {when} and at the last step"
        )

    def improves(self, value: float | None, best: dict | None) -> bool:
        """Whether ``value`` beats the best so far (the first defined value always does; ties do not)."""
        if value is None:
            return False
        if best is None:
            return True
        lower = self.spec["metric"] in LOWER_IS_BETTER
        return value < best["value"] if lower else value > best["value"]

    def evaluate(self, module: ModuleType, model: nn.Module, cfg: dict, device: torch.device) -> dict:
        """Score ``model`` on the held-out groups: ``{"metric", "value", "groups", "images", "seconds"}``."""
        from reference_models.predict import predict_with_fallback, to_original_size  # imports this trainer

        started = time.perf_counter()
        protocol = get_protocol(self.spec["protocol"])
        chunk = int(cfg["predict_chunk"]) if cfg.get("predict_chunk") else None
        training = model.training
        model.eval()
        scores = []
        devices = [device] if device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                for group, indices in self.images.items():
                    items = self.dataset.items[group]
                    images, _ = to_tensor_batch([self.dataset.image(group, index) for index in indices])
                    maps = predict_with_fallback(module, model, images.to(device), cfg, chunk)
                    sizes = [self.dataset.original_size(group, index) for index in indices]
                    for index, pred in zip(indices, to_original_size(maps, sizes), strict=True):
                        scores.append(protocol.score(pred, protocol.read_gt(items[index].gt_path)))
        finally:
            model.train(training)
        value = aggregate(scores, protocol)["metrics"][self.spec["metric"]]
        return {
            "metric": self.spec["metric"],
            "value": value,
            "groups": len(self.images),
            "images": len(scores),
            "seconds": round(time.perf_counter() - started, 3),
        }


def hold_out(
    cfg: dict, dataset: GroupDataset, out: Path, main: bool
) -> tuple[GroupDataset, Validator | None]:
    """(the training set without the held-out groups, their validator); ``(dataset, None)`` when
    ``validation.groups`` is 0. The main process records the split in ``<out>/validation.json``."""
    spec = cfg["validation"]
    if float(spec["groups"]) == 0:
        if main:
            (out / RECORD).unlink(missing_ok=True)  # an earlier run's split, restarted without one
        return dataset, None
    refuse_test_set(dataset)
    chosen = choose(dataset, spec)
    validator = Validator(dataset.subset(list(chosen)), chosen, dict(spec))
    if main:
        record: dict[str, Any] = {
            "train_set": str(cfg["train_set"]),
            "dataset": dataset.name,
            "seed": int(spec["seed"]),
            "rule": validator.rule,
            "groups_total": len(dataset.groups),
            "held_out_groups": list(chosen),
            "images": {group: [dataset.items[group][i].stem for i in idx] for group, idx in chosen.items()},
        }
        out.mkdir(parents=True, exist_ok=True)
        io.write_json(out / RECORD, record)
    return dataset.subset([group for group in dataset.groups if group not in chosen]), validator
