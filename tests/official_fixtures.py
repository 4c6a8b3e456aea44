"""Readers of the fixtures a port's tests compare with (``tests/fixtures/<model>/``, see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def official_outputs(folder: Path) -> dict[str, np.ndarray]:
    """Every array of ``official_outputs.npz``, loaded."""
    with np.load(folder / "official_outputs.npz") as data:
        return {key: data[key] for key in data.files}


def official_keys(folder: Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``state_dict_keys.json`` as ``(key, shape, dtype)`` in the official state dict's order."""
    document = json.loads((folder / "state_dict_keys.json").read_text())
    return [(key, tuple(shape), dtype) for key, shape, dtype in document["keys"]]
