"""The GCoNet paper recipe trains as the release does (fp32, cuDNN deterministic); bf16 is a separate recipe."""

from __future__ import annotations

from reference_models import recipes
from reference_models.train import resolve_recipe


def test_paper_recipe_is_fp32_and_deterministic() -> None:
    cfg = resolve_recipe("gconet", None, [], {})
    assert cfg["amp"] == "none" and cfg["deterministic"] is True and cfg["seed"] == 1996


def test_bf16_recipe_differs_only_in_precision() -> None:
    paper = recipes.load_recipe("gconet.yaml")
    fast = recipes.load_recipe("gconet-bf16.yaml")
    assert fast["amp"] == "bf16"
    assert {key for key in paper.keys() | fast.keys() if paper.get(key) != fast.get(key)} == {"amp"}
