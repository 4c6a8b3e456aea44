"""Provenance of the reference models' checkpoints: built by the trainer, completed by the predictor.

The record and its keys are described in :mod:`cosalbench.provenance`. The trainer stores it in every
checkpoint it saves (``checkpoint.pth``, ``best.pth``, ``final.pth``) with the checkpoint's own digest
null; :func:`for_loaded_checkpoint` gives the record of a checkpoint file ``predict`` loads, with that
file's digest, and the best that can be said for files without one (older trainer checkpoints, the
official releases' bare state dicts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from cosalbench.provenance import KEYS, check, file_record
from reference_models import backbones

CHUNK = 1 << 20
RESUME_RULE = "latest step (the resume state)"


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def recipe_sha256(cfg: Mapping[str, Any], excluded: Collection[str]) -> str:
    """SHA-256 of the canonical JSON of recipe ``cfg`` without the ``excluded`` keys.

    The trainer excludes its run-control keys (paths, devices, worker counts, step limits: they do not
    change what one step trains) and ``seed`` (recorded on its own), so the runs of one recipe with
    several seeds, on several machines, share the digest.
    """
    return hashlib.sha256(canonical_json({k: v for k, v in cfg.items() if k not in excluded})).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def train_sets(cfg: Mapping[str, Any]) -> list[str]:
    """The training sets of a recipe: ``train_set`` then ``joint_train_set`` (GCoNet+) when set;
    generated sets are named ``synthetic``."""
    names = [cfg.get("train_set"), cfg.get("joint_train_set")]
    found = ["synthetic" if str(name).lower() == "synthetic" else str(name) for name in names if name]
    return list(dict.fromkeys(found))


def backbone_weights(model: nn.Module, cfg: Mapping[str, Any]) -> dict[str, str | None] | None:
    """``{"file", "sha256"}`` of the ImageNet weight file ``model``'s backbone was loaded from (found
    as the model's builder found it), or None for a random-init backbone."""
    for module in model.modules():
        if isinstance(module, backbones.VGGFeatures | backbones.VGGBlocks | backbones.VGGStages):
            if module.init == backbones.RANDOM_INIT:
                return None
            path = backbones.resolve_weights(module.arch, cfg.get("backbone_weights"))
            return file_record(path.name, file_sha256(path))
    return None


def record(**values: Any) -> dict[str, Any]:
    """A provenance record in :data:`~cosalbench.provenance.KEYS` order (every key required)."""
    return {key: values[key] for key in KEYS}


def run_provenance(
    cfg: Mapping[str, Any], excluded: Collection[str], weights: dict[str, str | None] | None
) -> dict[str, Any]:
    """What every checkpoint of one run shares (the keys but ``steps``, ``checkpoint_rule``, ``checkpoint``)."""
    return {
        "model": str(cfg["model"]),
        "recipe_sha256": recipe_sha256(cfg, excluded),
        "train_sets": train_sets(cfg),
        "backbone_weights": weights,
        "input_size": int(cfg["size"]),
        "seed": int(cfg["seed"]),
    }


def for_checkpoint(run: Mapping[str, Any], steps: int, rule: str, name: str) -> dict[str, Any]:
    """The record a checkpoint file ``name`` saved at global step ``steps`` carries (its digest null)."""
    return record(**run, steps=int(steps), checkpoint_rule=rule, checkpoint=file_record(name, None))


def for_loaded_checkpoint(
    payload: Mapping[str, Any],
    path: Path,
    sha256: str,
    cfg: Mapping[str, Any],
    model_name: str,
    excluded: Collection[str],
) -> dict[str, Any]:
    """The record of checkpoint file ``path`` (digest ``sha256``) as ``predict`` uses it.

    A trainer checkpoint with a record keeps it (digest filled in); an older trainer checkpoint gets what
    its recipe says (backbone file and rule unknown: null); an official bare state dict gets the model,
    the input size it is run at and the file, null for the rest.
    """
    checkpoint = file_record(path.name, sha256)
    if payload.get("provenance") is not None:
        return check({**payload["provenance"], "checkpoint": checkpoint}, path)
    trainer = "recipe" in payload
    return record(
        model=model_name,
        recipe_sha256=recipe_sha256(cfg, excluded) if trainer else None,
        train_sets=train_sets(cfg) if trainer else None,
        backbone_weights=None,
        input_size=int(cfg["size"]),
        seed=int(cfg["seed"]) if trainer and cfg.get("seed") is not None else None,
        steps=int(payload["step"]) if trainer and isinstance(payload.get("step"), int) else None,
        checkpoint_rule=None,
        checkpoint=checkpoint,
    )
