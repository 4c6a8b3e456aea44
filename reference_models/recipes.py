"""Recipes: YAML files of every hyperparameter of a run, ``key=value`` overrides, the resolved copy.

A recipe is a mapping; nested mappings are addressed with dots (``loss_weights.focal=100``). Override
values are parsed as YAML (``1e-4`` -> float too, ``[0.9, 0.99]`` -> list, ``null`` -> None). Only keys the
recipe (or the trainer's defaults) already has can be overridden, so a typo is an error, not a no-op.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cosalbench import io
from cosalbench.errors import CosalbenchError, exception_summary

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
    except yaml.YAMLError as exc:
        raise CosalbenchError(path, f"not valid YAML ({exception_summary(exc)})") from exc
    if not isinstance(data, dict):
        raise CosalbenchError(path, "a recipe must be a YAML mapping of keys to values")
    return data


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``, nested mappings merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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


def apply_overrides(cfg: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys for nested mappings) to a copy of ``cfg``."""
    out = copy.deepcopy(dict(cfg))
    for text in overrides:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise CosalbenchError(None, f"bad override {text!r}", "write key=value, e.g. lr=1e-4")
        value = parse_value(raw, text)
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise CosalbenchError(None, f"override {text!r}: {part!r} is not a section of the recipe")
            node = node[part]
        if leaf not in node:
            known = ", ".join(sorted(node))
            raise CosalbenchError(
                None, f"override {text!r}: unknown recipe key {key!r}", f"known keys: {known}"
            )
        node[leaf] = value
    return out


def save_recipe(path: str | Path, cfg: Mapping[str, Any]) -> None:
    """Write the resolved recipe as YAML, atomically."""
    io.write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None))
