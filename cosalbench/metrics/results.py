"""Result documents (contract 5): assembly, strict-JSON and CSV writing, console tables.

Conventions: a metric the protocol does not define is ``null``; a metric that is NaN (a degenerate
image, e.g. an empty S-measure quadrant under ``pysodmetrics``) is also written as ``null`` so
the JSON stays valid for strict parsers, and the images responsible are listed by name under
``nan_images`` (``{metric: ["group/stem", ...]}``). In the per-image CSV an undefined metric is an
empty cell and a NaN value is ``NaN``. Floats are written with Python's shortest round-trip
representation, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cosalbench import __version__, io
from cosalbench.metrics.protocols import CURVE_KEYS, SCALAR_KEYS, get_protocol
from cosalbench.metrics.score_table import ScoreTable

AGGREGATIONS = ("image_mean", "group_mean")
CSV_COLUMNS = ("group", "stem", *SCALAR_KEYS)
# short console labels of the scalar metrics
LABELS = {
    "sm": "S",
    "mae": "MAE",
    "maxem": "maxE",
    "meanem": "meanE",
    "adpem": "adpE",
    "maxfm": "maxF",
    "meanfm": "meanF",
    "adpfm": "adpF",
    "adpfm_meanstd": "adpF_ms",
    "auc": "AUC",
    "wfm": "wF",
}


@dataclass(frozen=True)
class Result:
    """One (method, dataset) evaluation: the JSON document and its per-image CSV rows."""

    document: dict
    rows: list[list[str]]
    columns: tuple[str, ...] = CSV_COLUMNS


def _number(value: Any) -> float | None:
    """A JSON-safe float: None for undefined or NaN."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _scalars(metrics: dict) -> dict[str, float | None]:
    return {key: _number(metrics.get(key)) for key in SCALAR_KEYS}


def _curve(values: Any) -> list[float | None] | None:
    """A curve as a JSON-safe list (NaN points as None)."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    points = array.tolist()
    return [_number(v) for v in points] if np.isnan(array).any() else points


def _curves(curves: dict, keys: Sequence[str]) -> dict[str, list[float | None] | None]:
    return {key: _curve(curves.get(key)) for key in keys}


def _flagged(keys: Sequence[tuple[str, str]], flags: np.ndarray) -> list[str]:
    return [f"{group}/{stem}" for (group, stem), flag in zip(keys, flags.tolist(), strict=True) if flag]


def nan_images(keys: Sequence[tuple[str, str]], table: ScoreTable) -> dict[str, list[str]]:
    """``{metric: ["group/stem", ...]}`` for every scalar or curve that is NaN on some image."""
    found: dict[str, list[str]] = {}
    scalar_nan = np.isnan(table.scalars) & table.scalar_defined
    for j in np.flatnonzero(scalar_nan.any(axis=0)).tolist():
        found[SCALAR_KEYS[j]] = _flagged(keys, scalar_nan[:, j])
    curve_nan = np.isnan(table.curves).any(axis=2) & table.curve_defined
    for j in np.flatnonzero(curve_nan.any(axis=0)).tolist():
        found[CURVE_KEYS[j]] = _flagged(keys, curve_nan[:, j])
    return found


def _csv_cell(value: float | None) -> str:
    if value is None:
        return ""
    return "NaN" if math.isnan(value) else repr(float(value))  # as _csv_column writes a column


def _csv_column(values: np.ndarray, defined: np.ndarray) -> list[str]:
    """:func:`_csv_cell` of every value of a float64 column (``""`` where not ``defined``)."""
    numbers = values.tolist()
    nan = np.isnan(values)
    if np.isinf(values).any():  # not a score any protocol gives, but written as repr writes it
        cells = ["NaN" if cell == "nan" else cell for cell in map(repr, numbers)]
    elif nan.any():
        flags = nan.tolist()
        cells = _float_cells([None if flag else number for number, flag in zip(numbers, flags, strict=True)])
        cells = ["NaN" if flag else cell for cell, flag in zip(cells, flags, strict=True)]
    else:
        cells = _float_cells(numbers)
    if not defined.all():
        cells = [cell if known else "" for cell, known in zip(cells, defined.tolist(), strict=True)]
    return cells


def image_rows(keys: Sequence[tuple[str, str]], table: ScoreTable) -> list[list[str]]:
    """Per-image CSV rows: group, stem, then every SCALAR_KEY (empty where undefined, NaN as ``NaN``)."""
    columns = [_csv_column(table.scalars[:, j], table.scalar_defined[:, j]) for j in range(len(SCALAR_KEYS))]
    return [[group, stem, *cells] for (group, stem), *cells in zip(keys, *columns, strict=True)]


def build_result(
    method: str,
    dataset: str,
    protocol: Any,
    keys: Sequence[tuple[str, str]],
    scores: ScoreTable,
    aggregated: dict,
    missing: Sequence[str],
    extra: dict | None = None,
) -> Result:
    """Assemble the contract-5 document (plus ``nan_images``) and the CSV rows of one evaluation.

    ``extra`` adds opt-in measures (``--metrics``) after the standard ones: ``{"names": [...],
    "image_mean": {...}, "group_mean": {...}, "groups": {group: {...}}, "images": [{...}, ...]}``.
    """
    thresholds = aggregated["image_mean"]["curves"].get("threshold", protocol.thresholds)
    curves = {
        aggregation: {
            "threshold": _curve(thresholds),
            **_curves(aggregated[aggregation]["curves"], CURVE_KEYS),
        }
        for aggregation in AGGREGATIONS
    }
    groups = {
        group: {
            "n_images": int(entry["n_images"]),
            "metrics": _scalars(entry["metrics"]),
            "curves": _curves(entry["curves"], CURVE_KEYS),
        }
        for group, entry in sorted(aggregated["groups"].items())
    }
    document = {
        "cosalbench": __version__,
        "method": method,
        "dataset": dataset,
        "protocol": protocol.name,
        "n_images": len(scores),
        "n_groups": len(groups),
        "missing_predictions": list(missing),
        "nan_images": nan_images(keys, scores),
        "image_mean": _scalars(aggregated["image_mean"]["metrics"]),
        "group_mean": _scalars(aggregated["group_mean"]["metrics"]),
        "curves": curves,
        "groups": groups,
        "images_csv": f"{dataset}.images.csv",
    }
    rows = image_rows(keys, scores)
    if not extra:
        return Result(document, rows)
    names = list(extra["names"])
    for aggregation in AGGREGATIONS:
        document[aggregation].update({name: _number(extra[aggregation][name]) for name in names})
    for group, entry in groups.items():
        entry["metrics"].update({name: _number(extra["groups"][group][name]) for name in names})
    for row, values in zip(rows, extra["images"], strict=True):
        row += [_csv_cell(values[name]) for name in names]
    return Result(document, rows, (*CSV_COLUMNS, *names))


# orjson writes the same shortest round-trip digits as Python's repr, but positional below 1e-4 and
# without the exponent's sign and padding: those numbers are rewritten as repr writes them
_FLOAT_OR_NONE = {float, type(None)}
_quoted = json.encoder.encode_basestring_ascii  # json.dumps of a str


def _float_cells(values: list) -> list[str]:
    """``repr`` of each float of ``values`` (``null`` for None), many times faster than one by one.

    NaN and infinities raise ``ValueError``, as ``json.dumps`` refuses them.
    """
    text = orjson.dumps(values).decode()
    if text.count("null") != values.count(None):  # orjson writes NaN and infinities as null
        raise ValueError("Out of range float values are not JSON compliant")
    cells = text[1:-1].split(",") if values else []
    if "e" in text or "0.0000" in text:
        for i, cell in enumerate(cells):
            if "e" in cell or cell.startswith(("0.0000", "-0.0000")):
                cells[i] = repr(values[i])
    return cells


def _number_list(values: list) -> str | None:
    """``json.dumps(values)`` of a list of floats and Nones, many times faster (None: not such a list)."""
    if not set(map(type, values)) <= _FLOAT_OR_NONE:
        return None
    return "[" + ", ".join(_float_cells(values)) + "]"


def _scalar_json(value: Any) -> str:
    """``json.dumps(value, allow_nan=False)``, without its encoder's setup for the common types."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("Out of range float values are not JSON compliant")
        return repr(value)
    if kind is str:
        return _quoted(value)
    if kind is int:
        return repr(value)
    if value is None:
        return "null"
    return json.dumps(value, allow_nan=False)


def _dumps(value: Any, indent: int) -> str:
    """JSON with nested objects indented and lists kept on one line (curves stay readable)."""
    if isinstance(value, dict) and value:
        pad = " " * (indent + 2)
        items = [
            f"{pad}{_quoted(key) if type(key) is str else json.dumps(key)}: {_dumps(item, indent + 2)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and value:
        numbers = _number_list(value)
        if numbers is not None:
            return numbers
    return _scalar_json(value)


def document_json(document: dict) -> str:
    """The document as strict JSON text (no NaN/Infinity), ending with a newline."""
    return _dumps(document, 0) + "\n"


def documents_json(documents: Sequence[dict]) -> str:
    """A list of documents as strict JSON text (what ``--json`` prints)."""
    return "[\n" + ",\n".join(_dumps(doc, 0) for doc in documents) + "\n]\n"


def result_paths(out: Path, method: str, dataset: str) -> tuple[Path, Path]:
    """``(<out>/<method>/<dataset>.json, <out>/<method>/<dataset>.images.csv)``."""
    folder = Path(out) / method
    return folder / f"{dataset}.json", folder / f"{dataset}.images.csv"


def write_result(out: Path, result: Result, place: Callable[[Path], Path] | None = None) -> tuple[Path, Path]:
    """Write the CSV then the JSON of ``result`` atomically; return both paths.

    ``place`` maps each final path to where it is written now (a staging folder's twin).
    """
    doc = result.document
    json_path, csv_path = result_paths(out, doc["method"], doc["dataset"])
    where = place or (lambda path: path)
    io.write_csv(where(csv_path), result.columns, result.rows)
    io.write_text(where(json_path), document_json(doc))
    return json_path, csv_path


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_table(documents: Sequence[dict]) -> str:
    """Plain-text tables, one per dataset: a row per method and aggregation, a column per metric.

    Metrics undefined (null) for every row are left out; ``-`` marks a null (undefined or NaN) value;
    ``*`` marks the aggregation the document's protocol reports by default.
    """
    blocks = []
    for dataset in dict.fromkeys(doc["dataset"] for doc in documents):
        docs = [doc for doc in documents if doc["dataset"] == dataset]
        columns = [k for k in SCALAR_KEYS if any(doc[a][k] is not None for doc in docs for a in AGGREGATIONS)]
        protocols = ", ".join(dict.fromkeys(doc["protocol"] for doc in docs))
        header = ["method", "aggregation", *(LABELS[k] for k in columns), "images", "missing"]
        rows = []
        for doc in docs:
            for aggregation in AGGREGATIONS:
                default = get_protocol(doc["protocol"]).default_aggregation
                mark = "*" if aggregation == default else ""
                values = [_format(doc[aggregation][k]) for k in columns]
                counts = [str(doc["n_images"]), str(len(doc["missing_predictions"]))]
                rows.append([doc["method"], aggregation + mark, *values, *counts])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [f"{dataset} -- protocol {protocols}"]
        lines += [
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in [header, *rows]
        ]
        lines.insert(2, "  ".join("-" * w for w in widths))
        lines.append("* the protocol's default aggregation; - undefined or NaN")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_notes(documents: Sequence[dict], shown: int = 5) -> str:
    """Summary lines about missing predictions and NaN images (empty when there is nothing to say)."""
    lines = []
    for doc in documents:
        name = f"{doc['method']}/{doc['dataset']}"
        lines += _ground_truth_notes(name, doc, shown)
        missing = doc["missing_predictions"]
        if missing:
            total = len(missing) + doc["n_images"]
            lines.append(f"{name}: {len(missing)} of {total} predictions missing: {preview(missing, shown)}")
        for metric, images in doc.get("nan_images", {}).items():
            lines.append(f"{name}: {metric} is NaN on {len(images)} image(s): {preview(images, shown)}")
    return "\n".join(lines) + ("\n" if lines else "")


# where a document's expected number of masks comes from (``gt_check.reference``)
_REFERENCES = {
    "manifest": "the manifest",
    "registry": "the registry's count",
    "none": "masks found; no manifest or registry count to check",
}


def preview(entries: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` entries joined by commas, then how many more there are."""
    more = f" and {len(entries) - shown} more" if len(entries) > shown else ""
    return ", ".join(entries[:shown]) + more


def ground_truth_problems(check: dict, shown: int = 5) -> list[str]:
    """``["2 missing: g/0001, g/0002", ...]`` for the non-empty lists of a document's ``gt_check``."""
    labelled = (
        ("unreadable", check["unreadable"]),
        ("missing", check["missing"]),
        ("not in the manifest", check["unexpected"]),
    )
    return [f"{len(entries)} {label}: {preview(entries, shown)}" for label, entries in labelled if entries]


def _ground_truth_notes(name: str, doc: dict, shown: int) -> list[str]:
    """How many masks were scored of how many expected, and what an incomplete set lacks."""
    check = doc.get("gt_check")
    if check is None:  # a document written before the ground-truth check
        return []
    reference = _REFERENCES.get(check["reference"], check["reference"])
    lines = [
        f"{name}: {doc['n_images']} of {check['expected']} ground-truth masks scored (expected: {reference})"
    ]
    if not doc.get("gt_complete", True):
        found = f"{check['found']} usable masks of {check['expected']} expected"
        problems = "; ".join([found, *ground_truth_problems(check, shown)])
        lines.append(f"{name}: ground truth INCOMPLETE (--allow-incomplete-gt): {problems}")
    return lines
