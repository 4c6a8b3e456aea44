"""The provenance record that travels from a checkpoint to its predictions and their result documents.

One JSON object with exactly the keys of :data:`KEYS`:

* ``model`` (str): the reference model (``gconet``, ``rcgs``, ...);
* ``recipe_sha256`` (str or null): SHA-256 of the canonical JSON of the validated recipe, without its
  run-control keys and ``seed`` (see ``reference_models.provenance.recipe_sha256``);
* ``train_sets`` (list of str or null): the training sets (``["DUTS_class"]``, ``["synthetic"]``, ...);
* ``backbone_weights`` (``{"file", "sha256"}`` or null): the ImageNet weight file the backbone started
  from; null for a random-init backbone (or unknown);
* ``input_size`` (int), ``seed`` (int or null), ``steps`` (int or null: global optimizer steps);
* ``checkpoint_rule`` (str or null): how this checkpoint was chosen, in words;
* ``checkpoint`` (``{"file", "sha256"}``): the checkpoint file. Inside a checkpoint its own digest is
  unknowable and null; ``prediction.json`` and result documents carry the digest of the file used.

Released official checkpoints carry null for what their release does not say. This module does not
import torch: ``cosalbench evaluate`` copies the record from ``<method>/prediction.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cosalbench.errors import CosalbenchError, from_os_error

KEYS = (
    "model",
    "recipe_sha256",
    "train_sets",
    "backbone_weights",
    "input_size",
    "seed",
    "steps",
    "checkpoint_rule",
    "checkpoint",
)
PREDICTION_RECORD = "prediction.json"


def file_record(name: str, sha256: str | None) -> dict[str, str | None]:
    """``{"file": name, "sha256": hex}`` of one file (``sha256`` null where it cannot be known)."""
    return {"file": name, "sha256": sha256}


def _is_file_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"file", "sha256"}
        and isinstance(value["file"], str)
        and (value["sha256"] is None or isinstance(value["sha256"], str))
    )


def _optional(kind: type) -> Any:
    return lambda value: value is None or (isinstance(value, kind) and not isinstance(value, bool))


_CHECKS = {
    "model": lambda value: isinstance(value, str),
    "recipe_sha256": _optional(str),
    "train_sets": lambda value: (
        value is None or (isinstance(value, list) and all(isinstance(name, str) for name in value))
    ),
    "backbone_weights": lambda value: value is None or _is_file_record(value),
    "input_size": _optional(int),
    "seed": _optional(int),
    "steps": _optional(int),
    "checkpoint_rule": _optional(str),
    "checkpoint": _is_file_record,
}


def check(record: Any, source: str | Path | None) -> dict[str, Any]:
    """``record`` when it is a provenance object (exactly :data:`KEYS`, each of its type), else a
    one-line CosalbenchError naming ``source``."""
    if not isinstance(record, dict) or set(record) != set(KEYS):
        found = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
        raise CosalbenchError(
            source, f"bad provenance record ({found})", f"expected the keys {', '.join(KEYS)}"
        )
    for key in KEYS:
        if not _CHECKS[key](record[key]):
            raise CosalbenchError(source, f"bad provenance value {key}={record[key]!r}")
    return record


def recorded_provenance(method_folder: Path, dataset: str) -> dict[str, Any] | None:
    """The provenance ``<method_folder>/prediction.json`` records for ``dataset``'s maps, or None when
    there is no such file (maps from elsewhere) or it records none (written before provenance existed).

    An unreadable or malformed record is a one-line error naming it: its maps' origin would be wrong.
    """
    path = Path(method_folder) / PREDICTION_RECORD
    if not path.is_file():
        return None
    hint = "fix or remove it (`cosalbench predict` writes it) to score the maps without provenance"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise from_os_error(exc, path) from exc
    except ValueError as exc:
        raise CosalbenchError(path, "not a valid prediction record (bad JSON)", hint) from exc
    entry = record.get("datasets", {}).get(dataset) if isinstance(record, dict) else None
    if not isinstance(entry, dict) or entry.get("provenance") is None:
        return None
    try:
        return check(entry["provenance"], path)
    except CosalbenchError as exc:
        raise CosalbenchError(path, f"dataset {dataset}: {exc.problem}", hint) from None
