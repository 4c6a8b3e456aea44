"""Recipes: YAML files of every hyperparameter of a run, ``key=value`` overrides, the resolved copy.

A recipe is a mapping; nested mappings are addressed with dots (``loss_weights.focal=100``). Override
values are parsed as YAML (``1e-4`` -> float too, ``[0.9, 0.99]`` -> list, ``null`` -> None). Only keys the
schema (``reference_models.schema``) describes can be set, and each value is checked against it there.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cosalbench import io
from cosalbench.errors import CosalbenchError, exception_summary
from reference_models import schema

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def find_recipe(name: str | Path) -> Path:
    """A recipe path as given, else ``recipes/<name>`` of the source tree."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / path.name
    if shipped.is_file():
        return shipped
    raise CosalbenchError(path, "recipe not found", f"give a YAML file path or a name in {RECIPES_DIR}")


def load_recipe(name: str | Path) -> dict[str, Any]:
    """Read a recipe YAML file into a dict."""
    path = find_recipe(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CosalbenchError(path, "not a UTF-8 text file", "a recipe is a YAML file") from exc
    except yaml.YAMLError as exc:
        raise CosalbenchError(path, f"not valid YAML ({exception_summary(exc)})") from exc
    if not isinstance(data, dict):
        raise CosalbenchError(path, "a recipe must be a YAML mapping of keys to values")
    return data


def parse_value(raw: str, text: str = "") -> Any:
    """An override value as YAML, with ``1e-4``-style numbers (strings to YAML 1.1) read as floats."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise CosalbenchError(
            None, f"bad value in override {text or raw!r} ({exception_summary(exc)})"
        ) from exc
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(
    cfg: Mapping[str, Any], overrides: Sequence[str], keys: Mapping[str, schema.Field]
) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys for nested sections) to a copy of ``cfg``, each checked
    against the schema ``keys``: an unknown key or a bad value is a one-line error naming it."""
    out = copy.deepcopy(dict(cfg))
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CosalbenchError(None, f"bad override {text!r}", "write key=value, e.g. lr=1e-4")
        *parents, leaf = key.split(".")
        node, specs = out, keys
        for part in parents:
            spec = specs.get(part)
            if spec is None or spec.kind != "section":
                raise CosalbenchError(
                    None,
                    f"override {text!r}: {part!r} is not a section of the recipe",
                    schema.suggest(part, specs),
                )
            node, specs = node.setdefault(part, {}), spec.fields
        if leaf not in specs:
            raise CosalbenchError(
                None, f"override {text!r}: unknown recipe key {key!r}", schema.suggest(leaf, specs)
            )
        node[leaf] = schema.coerce(parse_value(raw, text), specs[leaf], key, f"override {text}")
    return out


def save_recipe(path: str | Path, cfg: Mapping[str, Any]) -> None:
    """Write the resolved recipe as YAML, atomically."""
    io.write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None))
