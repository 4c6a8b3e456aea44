"""Dataset-level numbers from per-image scores: flat (``image_mean``) and per group (``group_mean``).

Per-image scalars (S, MAE, adaptive F/E, weighted F) are averaged; the F/E/PR/ROC curves are averaged
threshold by threshold, and max/mean F and E and the AUC are taken from the averaged curves (one
dataset-wide threshold, as every reference does). ``group_mean`` first averages within each group, then
over groups (PySODEvalToolkit's grouped mode, Fan's CoSal ``main.m``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cosalbench.errors import CosalbenchError
from cosalbench.metrics import measures
from cosalbench.metrics.protocols import (
    AGGREGATIONS,
    CURVE_KEYS,
    SCALAR_KEYS,
    ImageScores,
    Protocol,
    get_protocol,
)
from cosalbench.metrics.score_table import ScoreTable

MEAN_KEYS = ("sm", "mae", "adpem", "adpfm", "adpfm_meanstd", "wfm")  # averaged as scalars
"""Scalars averaged over images; the others (max/mean F and E, AUC) come from the averaged curves."""


def _summarise(
    means: Mapping[str, float | None], curves: Mapping[str, np.ndarray], protocol: Protocol
) -> dict:
    """The ``{"metrics", "curves"}`` document of averaged scalars and averaged curves."""
    metrics: dict[str, float | None] = dict(means)
    metrics.update(measures.curve_summary(curves), auc=protocol.auc(curves["tpr"], curves["fpr"]))
    return {
        "metrics": {key: metrics[key] for key in SCALAR_KEYS},
        "curves": {"threshold": protocol.thresholds.astype(np.float64).tolist()}
        | {key: np.asarray(curves[key], dtype=np.float64).tolist() for key in CURVE_KEYS},
    }


def _mean_scalar(values: Sequence[float | None], weights: np.ndarray | None = None) -> float | None:
    """Mean (weighted when ``weights`` is given) of per-row scalars; None when any row lacks the value."""
    if not values or any(value is None for value in values):
        return None
    array = np.array(values, dtype=np.float64)
    if weights is None:
        return float(np.mean(array))
    return float(np.dot(weights, array) / weights.sum())


def _mean_curves(stacked: Mapping[str, np.ndarray], weights: np.ndarray | None = None) -> dict:
    """Threshold-wise mean (weighted when ``weights`` is given) of each curve's ``(rows, T)`` stack."""
    return {
        key: np.mean(stack, axis=0) if weights is None else weights @ stack / weights.sum()
        for key, stack in stacked.items()
    }


def _table(scores: Sequence[ImageScores] | ScoreTable, protocol: Protocol) -> ScoreTable:
    return scores if isinstance(scores, ScoreTable) else ScoreTable.of(scores, len(protocol.thresholds))


def _defined_mean(values: np.ndarray, defined: np.ndarray) -> float | None:
    """Mean of one scalar's contiguous values; None when any row lacks it."""
    return float(np.mean(values)) if defined.all() else None


def aggregate(scores: Sequence[ImageScores] | ScoreTable, protocol: Protocol) -> dict:
    """Mean over the given images: ``{"metrics": {SCALAR_KEYS}, "curves": {"threshold", CURVE_KEYS}}``."""
    table = _table(scores, protocol)
    if not len(table):
        raise CosalbenchError(None, "no images to aggregate")
    means = {key: _defined_mean(*table.scalar(key)) for key in MEAN_KEYS}
    curves = np.mean(table.curves, axis=0)  # row by row, as on each curve's own (n, T) column
    return _summarise(means, {key: curves[j] for j, key in enumerate(CURVE_KEYS)}, protocol)


def _reduce_groups(
    groups: Mapping[str, Mapping],
    aggregation: str,
    protocol: Protocol,
    stacked: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Combine per-group means: weighted by image counts (``image_mean``) or equally (``group_mean``).

    ``stacked`` holds each curve of every group, ``(groups, T)`` in name order, when the caller has them
    as arrays (else they are read from ``groups``).
    """
    if aggregation not in AGGREGATIONS:
        raise CosalbenchError(
            None, f"unknown aggregation {aggregation!r}", f"use one of {', '.join(AGGREGATIONS)}"
        )
    if not groups:
        raise CosalbenchError(None, "no groups to aggregate")
    entries = [groups[name] for name in sorted(groups)]
    weights = None
    if aggregation == "image_mean":
        weights = np.array([entry["n_images"] for entry in entries], dtype=np.float64)
    means = {key: _mean_scalar([entry["metrics"][key] for entry in entries], weights) for key in MEAN_KEYS}
    if stacked is None:
        stacked = {
            key: np.array([entry["curves"][key] for entry in entries], dtype=np.float64) for key in CURVE_KEYS
        }
    return _summarise(means, _mean_curves(stacked, weights), protocol)


def _group_summaries(
    table: ScoreTable, groups: Sequence[str], protocol: Protocol
) -> tuple[dict, dict[str, np.ndarray]]:
    """:func:`aggregate` of each group's rows (without thresholds), every group at once, sorted by name;
    and each mean curve of every group, ``(groups, T)``.

    The numbers are those of :func:`aggregate` on each group alone: the same ``np.mean`` calls, on the
    group's rows taken together (curves) and on each contiguous group column (scalars).
    """
    names = sorted(set(groups))
    code = {name: index for index, name in enumerate(names)}
    codes = np.array([code[group] for group in groups])
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # rows usually come group by group already (the GT's order): then nothing is copied
    ordered = table.curves if (np.diff(codes) >= 0).all() else table.curves[order]
    stops = (starts + counts).tolist()
    # each group's mean curves as np.mean computes them (np.add.reduceat rounds differently)
    curves = np.stack(
        [np.mean(ordered[start:stop], axis=0) for start, stop in zip(starts.tolist(), stops, strict=True)]
    )  # (G, keys, T)
    by_key = {key: curves[:, j] for j, key in enumerate(CURVE_KEYS)}
    summaries = {key: value.tolist() for key, value in measures.curve_summaries(by_key).items()}
    auc = protocol.auc(by_key["tpr"], by_key["fpr"])
    columns = np.ascontiguousarray(table.scalars[order].T)  # (keys, n): each group's values contiguous
    defined = table.scalar_defined[order].T
    per_group = {}
    for g, (name, start, stop) in enumerate(zip(names, starts.tolist(), stops, strict=True)):
        metrics: dict[str, float | None] = {}
        for key in MEAN_KEYS:
            j = SCALAR_KEYS.index(key)
            metrics[key] = _defined_mean(columns[j, start:stop], defined[j, start:stop])
        metrics.update({key: values[g] for key, values in summaries.items()})
        metrics["auc"] = None if auc is None else float(auc[g])
        per_group[name] = {
            "n_images": int(counts[g]),
            "metrics": {key: metrics[key] for key in SCALAR_KEYS},
            "curves": {key: curves[g, j].tolist() for j, key in enumerate(CURVE_KEYS)},
        }
    return per_group, by_key


def aggregate_groups(
    scores: Sequence[ImageScores] | ScoreTable, groups: Sequence[str], protocol: Protocol
) -> dict:
    """Flat and per-group aggregation of the same per-image rows (``groups[i]`` names image i's group).

    Returns ``{"image_mean": {...}, "group_mean": {...}, "groups": {g: {"n_images", "metrics", "curves"}}}``
    with groups sorted by name; per-group curves are the group's mean curves (without thresholds).
    """
    table = _table(scores, protocol)
    if len(table) != len(groups):
        raise CosalbenchError(None, f"{len(table)} score rows but {len(groups)} group names")
    per_group, stacked = _group_summaries(table, groups, protocol) if len(table) else ({}, None)
    return {
        "image_mean": aggregate(table, protocol),
        "group_mean": _reduce_groups(per_group, "group_mean", protocol, stacked),
        "groups": per_group,
    }


def reaggregate(groups: Mapping[str, Mapping], aggregation: str, protocol_name: str) -> dict:
    """Recompute ``{"metrics", "curves"}`` for a subset of ``aggregate_groups``' ``"groups"`` entries.

    Uses only each group's ``n_images``, mean scalars and mean curves (e.g. from a result JSON), so a
    bootstrap over groups needs no per-image data. Equals ``aggregate_groups`` on the same images up to
    float rounding (~1e-15).
    """
    return _reduce_groups(groups, aggregation, get_protocol(protocol_name))
