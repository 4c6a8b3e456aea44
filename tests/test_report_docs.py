"""Result-document fixtures built by hand (contract 5) and the loading/validation of documents.

``table_doc`` writes chosen scalar values (for exact table text); ``image_doc`` builds a document
from synthetic per-image rows with plain loops, so its ``image_mean``/``group_mean`` values are an
independent reference for the re-aggregation in ``cosalbench.metrics.compare``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.results_io import collect_results, load_result, select, validate_result

SCALARS = ("sm", "mae", "maxem", "meanem", "adpem", "maxfm", "meanfm", "adpfm", "adpfm_meanstd", "auc", "wfm")
PLAIN_SCALARS = ("sm", "mae", "adpem", "adpfm", "adpfm_meanstd", "wfm")
CURVES = ("precision", "recall", "fm", "em", "tpr", "fpr")
N_THRESHOLDS = 11


def table_doc(
    method: str, dataset: str, values: dict, protocol: str = "pysodmetrics", group_values: dict | None = None
) -> dict:
    """A valid document whose image_mean holds ``values`` (others null) and group_mean ``group_values``."""
    image_mean = {key: values.get(key) for key in SCALARS}
    group_mean = {key: (group_values or {}).get(key) for key in SCALARS}
    curve = {key: [0.5] * N_THRESHOLDS for key in CURVES} | {
        "threshold": list(np.linspace(0, 1, N_THRESHOLDS))
    }
    return {
        "cosalbench": "0.1.0", "method": method, "dataset": dataset, "protocol": protocol,
        "n_images": 2, "n_groups": 1, "missing_predictions": [],
        "image_mean": image_mean, "group_mean": group_mean,
        "curves": {"image_mean": curve, "group_mean": curve},
        "groups": {"g": {"n_images": 2, "metrics": image_mean, "curves": {k: curve[k] for k in CURVES}}},
        "images_csv": f"{dataset}.images.csv",
    }  # fmt: skip


def auc_of(fpr: list[float], tpr: list[float]) -> float:
    """Reference AUC: trapezoid under (fpr, tpr) after a stable sort on fpr, in plain Python."""
    pairs = sorted(zip(fpr, tpr, strict=True), key=lambda p: p[0])
    return sum((x1 - x0) * (y1 + y0) / 2 for (x0, y0), (x1, y1) in zip(pairs, pairs[1:], strict=False))


def _curve_metrics(curves: dict) -> dict:
    return {
        "maxfm": max(curves["fm"]), "meanfm": sum(curves["fm"]) / len(curves["fm"]),
        "maxem": max(curves["em"]), "meanem": sum(curves["em"]) / len(curves["em"]),
        "auc": auc_of(curves["fpr"], curves["tpr"]),
    }  # fmt: skip


def _mean_rows(rows: list[dict]) -> dict:
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


def _mean_curves(curve_sets: list[dict]) -> dict:
    return {
        key: [sum(c[key][t] for c in curve_sets) / len(curve_sets) for t in range(N_THRESHOLDS)]
        for key in CURVES
    }


def synthetic_image(rng: np.random.Generator, quality: float) -> tuple[dict, dict]:
    """Plausible per-image scalars and curves (11 ascending thresholds); higher ``quality`` is better."""
    t = np.linspace(0, 1, N_THRESHOLDS)
    q = float(np.clip(quality + rng.normal(0, 0.08), 0.05, 0.95))
    recall = 1 - t ** (1 + 3 * q) * rng.uniform(0.6, 1.0)
    precision = np.clip(0.3 + 0.6 * q + 0.3 * t * q + rng.normal(0, 0.02, t.size), 0, 1)
    fm = 1.3 * precision * recall / np.maximum(0.3 * precision + recall, 1e-12)
    em = np.clip(0.5 + 0.4 * q * np.sin(np.pi * t) + rng.normal(0, 0.02, t.size), 0, 1)
    fpr = (1 - t) ** (1 + 4 * q) * rng.uniform(0.5, 1.0)
    curves = {"precision": precision, "recall": recall, "fm": fm, "em": em, "tpr": recall, "fpr": fpr}
    scalars = {
        "sm": q,
        "mae": (1 - q) * 0.3,
        "adpem": q * 0.9,
        "adpfm": q * 0.8,
        "adpfm_meanstd": q * 0.7,
        "wfm": q * 0.75,
    }
    return {k: float(v) for k, v in scalars.items()}, {k: [float(x) for x in v] for k, v in curves.items()}


def image_doc(
    method: str,
    images: dict[str, list[tuple[dict, dict]]],
    dataset: str = "Synth",
    protocol: str = "pysodmetrics",
) -> dict:
    """A contract-5 document reduced with plain loops from per-image (scalars, curves) rows by group."""
    groups, every_scalar, every_curve = {}, [], []
    for group in sorted(images):
        scalars = [s for s, _ in images[group]]
        curve_sets = [c for _, c in images[group]]
        curves = _mean_curves(curve_sets)
        groups[group] = {
            "n_images": len(scalars),
            "metrics": _mean_rows(scalars) | _curve_metrics(curves),
            "curves": curves,
        }
        every_scalar += scalars
        every_curve += curve_sets
    flat_curves = _mean_curves(every_curve)
    group_curves = _mean_curves([g["curves"] for g in groups.values()])
    image_mean = _mean_rows(every_scalar) | _curve_metrics(flat_curves)
    group_mean = _mean_rows([{k: g["metrics"][k] for k in PLAIN_SCALARS} for g in groups.values()])
    group_mean |= _curve_metrics(group_curves)
    threshold = [i / (N_THRESHOLDS - 1) for i in range(N_THRESHOLDS)]
    return {
        "cosalbench": "0.1.0", "method": method, "dataset": dataset, "protocol": protocol,
        "n_images": len(every_scalar), "n_groups": len(groups), "missing_predictions": [],
        "image_mean": image_mean, "group_mean": group_mean,
        "curves": {"image_mean": {"threshold": threshold, **flat_curves}, "group_mean": {"threshold": threshold, **group_curves}},
        "groups": groups, "images_csv": f"{dataset}.images.csv",
    }  # fmt: skip


def synthetic_images(seed: int, sizes: list[int], quality: float = 0.6) -> dict[str, list[tuple[dict, dict]]]:
    """Per-image rows for groups of the given sizes (group names ``g00``, ``g01``, ...)."""
    rng = np.random.default_rng(seed)
    return {f"g{i:02d}": [synthetic_image(rng, quality) for _ in range(n)] for i, n in enumerate(sizes)}


def write_doc(folder: Path, doc: dict) -> Path:
    """Write ``doc`` as ``<folder>/<method>/<dataset>.json`` (the layout evaluate uses)."""
    path = folder / doc["method"] / f"{doc['dataset']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


# ------------------------------------------------------------------------------------------ tests


def test_fixtures_are_valid_documents():
    doc = image_doc("m", synthetic_images(0, [2, 3]))
    assert validate_result(doc, "x.json") is doc
    assert doc["n_images"] == 5 and doc["groups"]["g01"]["n_images"] == 3
    assert validate_result(table_doc("m", "CoCA", {"sm": 0.5}), "y.json")["image_mean"]["sm"] == 0.5


def test_collect_from_files_and_folders(tmp_path):
    a = write_doc(tmp_path / "res", table_doc("A", "CoCA", {"sm": 0.7}))
    write_doc(tmp_path / "res", table_doc("B", "CoCA", {"sm": 0.8}))
    write_doc(tmp_path / "res", table_doc("B", "CoSOD3k", {"sm": 0.9}))
    (tmp_path / "res" / "recipe.json").write_text('{"lr": 1}')  # other JSON in a folder is ignored
    docs = collect_results([a, tmp_path / "res"])  # A given twice: loaded once
    assert [(d["method"], d["dataset"]) for d in docs] == [("A", "CoCA"), ("B", "CoCA"), ("B", "CoSOD3k")]
    assert docs[0]["_path"] == str(a)
    assert [d["method"] for d in select(docs, ["cosod3K"])] == ["B"]
    coco = table_doc("A", "COCO9213", {"sm": 0.7})
    assert select([coco], ["coco-9k"]) == select([coco], ["coco9213"]) == [coco]  # registry alias
    with pytest.raises(CosalbenchError, match="no result for dataset"):
        select(docs, ["CoCA", "MSRC"])


def test_named_non_result_file_is_an_error(tmp_path):
    other = tmp_path / "recipe.json"
    other.write_text('{"lr": 1}')
    with pytest.raises(CosalbenchError, match="not a cosalbench result document"):
        collect_results([other])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(CosalbenchError, match="not valid JSON"):
        load_result(broken)
    with pytest.raises(CosalbenchError, match="no such file"):
        collect_results([tmp_path / "absent.json"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CosalbenchError, match="holds no cosalbench result"):
        collect_results([empty])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("groups"), "lacks 'groups'"),
        (lambda d: d.update(n_images="5"), "'n_images' has the wrong type"),
        (lambda d: d["image_mean"].update(sm="high"), "'image_mean.sm' is 'high'"),
        (lambda d: d["curves"]["image_mean"].update(fm=[0.1, 0.2]), "different lengths"),
        (lambda d: d["groups"]["g"].pop("n_images"), "lacks an integer 'n_images'"),
    ],
)
def test_schema_errors_name_the_problem(tmp_path, mutate, message):
    doc = table_doc("A", "CoCA", {"sm": 0.7})
    mutate(doc)
    path = write_doc(tmp_path, doc)
    with pytest.raises(CosalbenchError, match=message) as info:
        collect_results([tmp_path])
    assert str(path) in str(info.value)
