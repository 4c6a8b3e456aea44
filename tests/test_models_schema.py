"""The recipe schema: defaults, coercion, ranges, did-you-mean, model sections and module tables."""

from __future__ import annotations

import types

import pytest

from cosalbench.errors import CosalbenchError
from reference_models import schema
from reference_models.schema import Field


def test_defaults_fill_every_key_and_sections() -> None:
    cfg = schema.validate({}, schema.keys_for("gconet"))
    assert cfg["lr"] == 1e-4 and cfg["betas"] == [0.9, 0.999] and cfg["group_size"] == 16
    assert cfg["loss_weights"] == {"iou": 1.0, "cls": 3.0, "focal": 250.0}
    assert cfg["synthetic"]["n_groups"] == 8 and "subgroup_size" not in cfg


def test_values_are_coerced_to_their_type() -> None:
    keys = schema.keys_for("gconet")
    cfg = schema.validate({"lr": "1e-4", "epochs": 2.0, "betas": [0, "0.99"], "num_classes": "auto"}, keys)
    assert cfg["lr"] == 1e-4 and isinstance(cfg["lr"], float)  # YAML 1.1 reads 1e-4 as a string
    assert cfg["epochs"] == 2 and isinstance(cfg["epochs"], int)
    assert cfg["betas"] == [0.0, 0.99] and cfg["num_classes"] == "auto"
    assert schema.validate({"loss_weights": {"focal": 10}}, keys)["loss_weights"] == {
        "iou": 1.0, "cls": 3.0, "focal": 10.0}  # fmt: skip


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"epoch": 2}, "recipe.yaml: unknown recipe key 'epoch' (did you mean 'epochs'?)"),
        ({"lr": "fast"}, "recipe.yaml: recipe key 'lr': bad value 'fast' (expected a number > 0)"),
        ({"lr": 0}, "recipe key 'lr': bad value 0 (expected a number > 0)"),
        ({"epochs": "ten"}, "recipe key 'epochs': bad value 'ten' (expected an integer >= 1 or null)"),
        ({"epochs": 2.5}, "recipe key 'epochs': bad value 2.5"),
        ({"epochs": True}, "recipe key 'epochs': bad value True"),
        ({"betas": 0.9}, "recipe key 'betas': bad value 0.9 (expected a list of 2 numbers in [0, 1])"),
        ({"betas": [0.9, 1.5]}, "recipe key 'betas': bad value [0.9, 1.5]"),
        ({"group_size": 0}, "recipe key 'group_size': bad value 0 (expected an integer >= 1)"),
        ({"max_steps": -1}, "recipe key 'max_steps': bad value -1 (expected an integer >= 1 or null)"),
        ({"amp": "fp16"}, "recipe key 'amp': bad value 'fp16' (expected one of bf16, none)"),
        ({"compile": "yes"}, "recipe key 'compile': bad value 'yes' (expected true or false)"),
        ({"lr": None}, "recipe key 'lr': bad value null"),
        (
            {"loss_weights": 3},
            "recipe key 'loss_weights': bad value 3 (expected a mapping with keys iou, cls, focal)",
        ),
        ({"loss_weights": {"focus": 1}}, "unknown recipe key 'loss_weights.focus' (did you mean 'focal'?)"),
        (
            {"num_classes": "many"},
            "recipe key 'num_classes': bad value 'many' (expected an integer >= 2 or 'auto')",
        ),
        ({"subgroup_size": 5}, "unknown recipe key 'subgroup_size'"),
    ],
)
def test_bad_recipes_are_one_line_errors(recipe: dict, message: str) -> None:
    with pytest.raises(CosalbenchError) as info:
        schema.validate(recipe, schema.keys_for("gconet"), "recipe.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_no_close_key_lists_the_known_ones() -> None:
    hint = schema.suggest("zzz", {"lr": 1, "epochs": 2})
    assert hint == "known keys: epochs, lr"


def test_a_model_module_declares_its_own_keys() -> None:
    module = types.SimpleNamespace(
        RECIPE_KEYS={"classifier": Field("choice", "eq7", choices=("eq7", "direct"))}
    )
    keys = schema.keys_for("rcgs", module)
    assert schema.validate({}, keys)["classifier"] == "eq7" and "subgroup_size" in keys
    with pytest.raises(CosalbenchError, match="one of eq7, direct"):
        schema.validate({"classifier": "other"}, keys)
    assert "classifier" not in schema.keys_for("gconet")


def test_every_shipped_recipe_conforms() -> None:
    from reference_models.recipes import RECIPES_DIR, load_recipe
    from reference_models.registry import MODELS, load_model_module

    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe["model"] in MODELS, path
        schema.validate(recipe, schema.keys_for(recipe["model"], load_model_module(recipe["model"])), path)


def test_field_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown field kind"):
        Field("number")
