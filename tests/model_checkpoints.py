"""Small reference-model checkpoints for prediction tests (random init, tiny input size, no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from reference_models import recipes
from reference_models.registry import load_model_module


def tiny_checkpoint(path: Path, model_name: str = "gconet", seed: int = 0, **overrides: object) -> Path:
    """Write a trainer-style ``final.pth`` of ``model_name`` built from its smoke recipe (random init)."""
    module = load_model_module(model_name)
    cfg = {**recipes.load_recipe(f"{model_name}-smoke.yaml"), "pretrained": False, **overrides}
    if model_name == "rcgs" and not cfg.get("categories"):
        cfg["categories"] = ["a", "b"]
    torch.manual_seed(seed)
    model = module.build_model(cfg)
    payload = {
        "model": model.state_dict(),
        "recipe": cfg,
        "backbone": "random-init",
        "model_name": model_name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path
