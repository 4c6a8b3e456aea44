"""Loading and validating saved result documents (contract 5) from files and folders.

A result document is the JSON ``cosalbench evaluate`` writes per (method, dataset). Files named
explicitly must be result documents; folders are searched recursively and JSON files in them that
are not result documents (recipes, annotations, ...) are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cosalbench.datasets.registry import canonical_name
from cosalbench.errors import CosalbenchError

AGGREGATIONS = ("image_mean", "group_mean")
# keys every result document carries, with the JSON type each must have
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "cosalbench": str,
    "method": str,
    "dataset": str,
    "protocol": str,
    "n_images": int,
    "n_groups": int,
    "image_mean": dict,
    "group_mean": dict,
    "curves": dict,
    "groups": dict,
}
# keys whose joint presence marks a JSON object as a result document (inside folders)
SIGNATURE_KEYS = ("cosalbench", "method", "dataset", "protocol")
# the optional top-level ``provenance`` object: key -> what its value must be (null always allowed: unknown)
PROVENANCE_KEYS = {
    "model": "a string",
    "recipe_sha256": "a string",
    "train_sets": "a list of strings",
    "backbone_weights": "an object with 'file' and 'sha256'",
    "input_size": "an integer",
    "seed": "an integer",
    "steps": "an integer",
    "checkpoint_rule": "a string",
    "checkpoint": "an object with 'file' and 'sha256'",
}


def check_aggregation(aggregation: str) -> str:
    """Return ``aggregation`` when it is one of AGGREGATIONS, else raise CosalbenchError."""
    if aggregation not in AGGREGATIONS:
        raise CosalbenchError(
            None, f"unknown aggregation {aggregation!r}", f"use one of {', '.join(AGGREGATIONS)}"
        )
    return aggregation


def is_result_document(obj: Any) -> bool:
    """True when ``obj`` looks like a result document (it may still be malformed)."""
    return isinstance(obj, dict) and all(key in obj for key in SIGNATURE_KEYS)


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _check_scalars(path: Path, where: str, scalars: Any) -> None:
    if not isinstance(scalars, dict):
        raise CosalbenchError(path, f"'{where}' is not an object of metric values")
    for key, value in scalars.items():
        if not _is_number_or_null(value):
            raise CosalbenchError(path, f"'{where}.{key}' is {value!r}, not a number or null")


def _check_curves(path: Path, where: str, curves: Any) -> None:
    if not isinstance(curves, dict):
        raise CosalbenchError(path, f"'{where}' is not an object of curves")
    lengths = {}
    for key, values in curves.items():
        if values is None:
            continue
        if not isinstance(values, list) or not all(_is_number_or_null(v) for v in values):
            raise CosalbenchError(path, f"'{where}.{key}' is not a list of numbers")
        lengths[key] = len(values)
    if len(set(lengths.values())) > 1:
        raise CosalbenchError(path, f"curves in '{where}' have different lengths {lengths}")


def _provenance_value_ok(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "a string":
        return isinstance(value, str)
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a list of strings":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, dict) and all(isinstance(value.get(key), str) for key in ("file", "sha256"))


def _check_provenance(path: Path, provenance: Any) -> None:
    """``provenance`` (optional) is an object whose known keys have their contract types; keys may be
    absent or null (unknown), and keys this version does not know are kept untouched."""
    if provenance is None:
        return
    if not isinstance(provenance, dict):
        raise CosalbenchError(path, f"'provenance' is {type(provenance).__name__}, not an object")
    for key, kind in PROVENANCE_KEYS.items():
        if not _provenance_value_ok(kind, provenance.get(key)):
            raise CosalbenchError(path, f"'provenance.{key}' is {provenance[key]!r}, not {kind} or null")


def validate_result(doc: Any, path: str | Path) -> dict:
    """Check ``doc`` against contract 5 and return it; raise CosalbenchError naming what is wrong."""
    path = Path(path)
    hint = "pass the JSON documents written by 'cosalbench evaluate'"
    if not is_result_document(doc):
        raise CosalbenchError(path, "not a cosalbench result document", hint)
    for key, kind in REQUIRED_KEYS.items():
        if key not in doc:
            raise CosalbenchError(path, f"result document lacks '{key}'", hint)
        if not isinstance(doc[key], kind) or isinstance(doc[key], bool):
            raise CosalbenchError(path, f"'{key}' has the wrong type ({type(doc[key]).__name__})", hint)
    for aggregation in AGGREGATIONS:
        _check_scalars(path, aggregation, doc[aggregation])
        if aggregation in doc["curves"]:
            _check_curves(path, f"curves.{aggregation}", doc["curves"][aggregation])
    for group, entry in doc["groups"].items():
        where = f"groups.{group}"
        if not isinstance(entry, dict) or not isinstance(entry.get("n_images"), int):
            raise CosalbenchError(path, f"'{where}' lacks an integer 'n_images'")
        _check_scalars(path, f"{where}.metrics", entry.get("metrics", {}))
        _check_curves(path, f"{where}.curves", entry.get("curves", {}))
    _check_provenance(path, doc.get("provenance"))
    return doc


def read_json(path: Path) -> Any:
    """Parse a JSON file (``NaN`` allowed, as Python writes it); bad files raise CosalbenchError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CosalbenchError(path, f"cannot read file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise CosalbenchError(path, "not a UTF-8 text file") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CosalbenchError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from exc


def load_result(path: str | Path) -> dict:
    """Read and validate one result document; the returned dict gains ``"_path"`` (its file)."""
    path = Path(path)
    doc = validate_result(read_json(path), path)
    return {**doc, "_path": str(path)}


def _documents_in_folder(folder: Path) -> list[dict]:
    docs = []
    for path in sorted(folder.rglob("*.json")):
        if path.is_symlink() and not path.exists():
            raise CosalbenchError(path, "is a broken symbolic link", "restore its target or remove the link")
        if not path.is_file():
            raise CosalbenchError(
                path, "is not a regular file", "a result folder holds result files: move it"
            )
        obj = read_json(path)
        if is_result_document(obj):
            docs.append({**validate_result(obj, path), "_path": str(path)})
    return docs


def collect_results(paths: Iterable[str | Path]) -> list[dict]:
    """Load result documents from files and folders (searched recursively), in argument order.

    A file given twice (directly or through a folder) is loaded once. A named file that is not a
    result document, a missing path, or a folder holding no result document raise CosalbenchError.
    """
    docs: list[dict] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _documents_in_folder(path)
            if not found:
                raise CosalbenchError(path, "folder holds no cosalbench result document (*.json)")
        elif path.is_file():
            found = [load_result(path)]
        else:
            raise CosalbenchError(path, "no such file or folder")
        for doc in found:
            key = Path(doc["_path"]).resolve()
            if key not in seen:
                seen.add(key)
                docs.append(doc)
    if not docs:
        raise CosalbenchError(None, "no result documents given", "pass result JSON files or folders")
    return docs


def dataset_key(name: str) -> str:
    """A dataset name for matching: the registry's canonical spelling of an alias, case-folded."""
    return canonical_name(name).casefold()


def select(docs: Sequence[dict], datasets: Sequence[str] | None = None) -> list[dict]:
    """Keep the documents of ``datasets`` (names or registry aliases, any case); all when empty."""
    if not datasets:
        return list(docs)
    wanted = {dataset_key(name): name for name in datasets}
    kept = [doc for doc in docs if dataset_key(doc["dataset"]) in wanted]
    present = {dataset_key(doc["dataset"]) for doc in docs}
    absent = [name for key, name in wanted.items() if key not in present]
    if absent:
        known = ", ".join(sorted({doc["dataset"] for doc in docs}))
        raise CosalbenchError(None, f"no result for dataset(s) {', '.join(absent)}", f"results hold: {known}")
    return kept


def metric_value(doc: dict, aggregation: str, metric: str) -> float | None:
    """The scalar ``metric`` of ``doc`` under ``aggregation``.

    None when the protocol leaves it undefined; NaN when it is null because some images made it NaN
    (the document then lists them under ``nan_images``).
    """
    value = doc[aggregation].get(metric)
    if value is None:
        return math.nan if metric in (doc.get("nan_images") or {}) else None
    return float(value)


def source(doc: dict) -> str:
    """Where a document came from, for messages: its file, else ``method/dataset``."""
    return doc.get("_path") or f"{doc['method']}/{doc['dataset']}"
