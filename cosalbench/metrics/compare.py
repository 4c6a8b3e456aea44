"""Paired comparison of two methods on the same images: bootstrap CI, permutation test, wins.

Groups are the resampling unit (CoSOD results depend on them). Every metric is recomputed exactly
from the documents' per-group entries, as contract 5 prescribes: scalars are weighted means of the
per-group means (weights n_g for ``image_mean``, 1 for ``group_mean``); max/mean F and E are the
max/mean of the weighted mean curve; AUC is the trapezoid area under the weighted mean ROC curve.
A resample is a vector of weights over groups, so a batch of resamples is one matrix product.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.report import LOWER_IS_BETTER, METRIC_LABELS, default_aggregation, parse_metrics
from cosalbench.metrics.results_io import check_aggregation, metric_value, source

# metric -> the curves it is computed from; every other metric is a weighted mean of group scalars
CURVE_METRICS = {
    "maxfm": ("fm",),
    "meanfm": ("fm",),
    "maxem": ("em",),
    "meanem": ("em",),
    "auc": ("tpr", "fpr"),
}
TIE_TOLERANCE = 1e-9  # per-group values closer than this count as a tie
STAT_TOLERANCE = 1e-12  # a permuted statistic this close to the observed one counts as extreme
SMALL_GROUP_COUNT = 10  # up to this many groups, the printout warns how coarse the tests are
EXACT_MAX_GROUPS = 12  # up to this many groups the permutation test enumerates all 2^G (4,096) label swaps
# metrics evaluate computes only when asked, with the option that asks; protocols that never define them
ON_REQUEST = {"wfm": "--wfm"}
NEVER_COMPUTED = {"eval-co-sod": {"wfm"}}
CHUNK = 2500  # resamples per matrix product (bounds memory at ~CHUNK x curve length floats)


@dataclass
class GroupArrays:
    """One document's per-group entries as arrays over a fixed group order."""

    names: list[str]
    n_images: np.ndarray  # (G,)
    scalars: dict[str, np.ndarray]  # metric -> (G,), NaN where null
    curves: dict[str, np.ndarray]  # curve key -> (G, T)


def group_arrays(doc: dict, groups: Sequence[str], metrics: Sequence[str]) -> GroupArrays:
    """Stack the per-group scalars and the curves ``metrics`` need; missing curves raise."""
    path = doc.get("_path")
    n = np.array([doc["groups"][g]["n_images"] for g in groups], dtype=np.float64)
    scalars, curves = {}, {}
    for metric in metrics:
        if metric in CURVE_METRICS:
            for key in CURVE_METRICS[metric]:
                if key in curves:
                    continue
                rows = [doc["groups"][g].get("curves", {}).get(key) for g in groups]
                if any(row is None for row in rows):
                    raise CosalbenchError(
                        path,
                        f"per-group '{key}' curves are missing, needed to recompute {metric}",
                        "re-run 'cosalbench evaluate' to write per-group curves",
                    )
                try:
                    curves[key] = np.array(rows, dtype=np.float64)
                except ValueError as exc:
                    raise CosalbenchError(path, f"per-group '{key}' curves have different lengths") from exc
        else:
            values = [doc["groups"][g].get("metrics", {}).get(metric) for g in groups]
            scalars[metric] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return GroupArrays(list(groups), n, scalars, curves)


def _trapezoid_auc(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Row-wise area under (fpr, tpr) after a stable sort on fpr; no end points added."""
    order = np.argsort(fpr, axis=-1, kind="stable")
    x = np.take_along_axis(fpr, order, axis=-1)
    y = np.take_along_axis(tpr, order, axis=-1)
    return np.sum(np.diff(x, axis=-1) * (y[..., 1:] + y[..., :-1]) / 2.0, axis=-1)


def batch_metric(parts: Sequence[tuple[np.ndarray, GroupArrays]], metric: str) -> np.ndarray:
    """``metric`` for a batch of weightings: ``parts`` are (weights (B, G), arrays) pairs summed.

    The weights of all parts together give each sample's normaliser, so a sample may mix groups of
    two methods (the permutation test) or repeat groups (the bootstrap).
    """
    norm = sum(weights.sum(axis=1) for weights, _ in parts)

    def mean_of(pick: str, key: str) -> np.ndarray:
        total = sum(w @ getattr(arrays, pick)[key] for w, arrays in parts)
        return total / (norm[:, None] if pick == "curves" else norm)

    if metric not in CURVE_METRICS:
        return mean_of("scalars", metric)
    if metric == "auc":
        return _trapezoid_auc(mean_of("curves", "fpr"), mean_of("curves", "tpr"))
    curve = mean_of("curves", CURVE_METRICS[metric][0])
    return curve.max(axis=1) if metric.startswith("max") else curve.mean(axis=1)


def _chunks(total: int) -> Iterator[slice]:
    for start in range(0, total, CHUNK):
        yield slice(start, min(start + CHUNK, total))


def bootstrap_differences(
    arrays_a: GroupArrays, arrays_b: GroupArrays, metric: str, weights: np.ndarray
) -> np.ndarray:
    """B − A of ``metric`` for each row of group ``weights`` (resample counts times group sizes)."""
    return np.concatenate(
        [
            batch_metric([(weights[s], arrays_b)], metric) - batch_metric([(weights[s], arrays_a)], metric)
            for s in _chunks(len(weights))
        ]
    )


def permutation_differences(
    arrays_a: GroupArrays, arrays_b: GroupArrays, metric: str, swaps: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """B − A of ``metric`` after swapping the two methods' entries in the groups ``swaps`` marks."""
    out = []
    for s in _chunks(len(swaps)):
        keep, swap = size * ~swaps[s], size * swaps[s]
        out.append(
            batch_metric([(keep, arrays_b), (swap, arrays_a)], metric)
            - batch_metric([(keep, arrays_a), (swap, arrays_b)], metric)
        )
    return np.concatenate(out)


def label_swaps(n_groups: int, n_perm: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The swap patterns of the permutation test, (P, G) booleans, and how they were chosen.

    Up to EXACT_MAX_GROUPS groups: every one of the 2^G patterns once (``"exact"``); beyond, ``n_perm``
    patterns drawn uniformly (``"monte-carlo"``).
    """
    if n_groups <= EXACT_MAX_GROUPS:
        codes = np.arange(2**n_groups)[:, None]
        return ((codes >> np.arange(n_groups)) & 1).astype(bool), "exact"
    return rng.random((n_perm, n_groups)) < 0.5, "monte-carlo"


def permutation_p_value(permuted: np.ndarray, observed: float, method: str, n_groups: int) -> float:
    """Two-sided p of ``observed`` among the ``permuted`` statistics.

    ``exact``: the share of all 2^G swaps at least as extreme (the identity is one of them).
    ``monte-carlo``: (b + 1) / (m + 1) over m random swaps, never below the exact minimum 2/2^G.
    """
    if math.isnan(observed):
        return math.nan
    extreme = int(np.sum(np.abs(permuted) >= abs(observed) - STAT_TOLERANCE))
    if method == "exact":
        return extreme / len(permuted)
    return max((1 + extreme) / (1 + len(permuted)), 2.0 ** (1 - n_groups))


def _absent_metric_note(doc: dict, metric: str) -> str:
    """Why ``metric`` has no value in ``doc``: not computed (and how to get it), or undefined."""
    if metric in ON_REQUEST and metric not in NEVER_COMPUTED.get(doc["protocol"], ()):
        return (
            f"{metric} was not computed for {doc['method']} "
            f"(rerun 'cosalbench evaluate' with {ON_REQUEST[metric]})"
        )
    return f"{metric} is not defined under protocol {doc['protocol']}"


def _check_pair(a: dict, b: dict) -> tuple[list[str], list[str]]:
    """Refuse documents of different datasets, protocols or image sets; return (shared groups, notes)."""
    for key in ("dataset", "protocol"):
        if a[key] != b[key]:
            raise CosalbenchError(
                source(b),
                f"{key} differs: {a[key]!r} in {source(a)} vs {b[key]!r}",
                "compare results of one dataset and protocol",
            )
    shared = sorted(set(a["groups"]) & set(b["groups"]))
    notes = []
    for doc, other in ((a, b), (b, a)):
        only = sorted(set(doc["groups"]) - set(other["groups"]))
        if only:
            notes.append(f"{len(only)} group(s) only in {doc['method']} left out: {', '.join(only)}")
    for group in shared:
        na, nb = a["groups"][group]["n_images"], b["groups"][group]["n_images"]
        if na != nb:
            raise CosalbenchError(
                source(b),
                f"group {group!r} has {nb} images here but {na} in {source(a)}: not the same image set",
                "evaluate both methods on the same dataset version",
            )
    if len(shared) < 2:
        raise CosalbenchError(
            source(b),
            f"only {len(shared)} group(s) shared with {source(a)}",
            "the bootstrap needs at least two groups",
        )
    if len(shared) <= SMALL_GROUP_COUNT:
        notes.append(
            f"with {len(shared)} groups no two-sided permutation p-value can fall below {2.0 ** (1 - len(shared)):.3g} "
            "and the bootstrap interval is coarse"
        )
    shared_set = set(shared)
    missing_a, missing_b = (
        {key for key in doc.get("missing_predictions") or [] if key.split("/", 1)[0] in shared_set}
        for doc in (a, b)
    )
    if missing_a != missing_b:
        example = sorted(missing_a ^ missing_b)[0]
        raise CosalbenchError(
            source(b),
            f"scored on different images: {len(missing_a ^ missing_b)} image(s) lack a prediction in only one "
            f"of the two results (first: {example})",
            "add the missing predictions and evaluate again",
        )
    return shared, notes


def _wins(a: dict, b: dict, groups: Sequence[str], metric: str) -> tuple[int, int, int]:
    """Per-group (B better, A better, ties) on the groups' own metric values; NaN/null groups skipped."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    b_wins = a_wins = ties = 0
    for group in groups:
        va, vb = a["groups"][group]["metrics"].get(metric), b["groups"][group]["metrics"].get(metric)
        if va is None or vb is None or math.isnan(va) or math.isnan(vb):
            continue
        d = sign * (vb - va)
        if abs(d) <= TIE_TOLERANCE:
            ties += 1
        elif d > 0:
            b_wins += 1
        else:
            a_wins += 1
    return b_wins, a_wins, ties


def compare_results(
    a: dict,
    b: dict,
    metrics: Sequence[str] = ("sm", "maxem", "maxfm", "mae"),
    aggregation: str | None = None,
    n_boot: int = 10_000,
    n_perm: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Paired comparison of result documents ``a`` and ``b`` (same dataset, protocol and images).

    For each metric: the values of A and B recomputed on the shared groups, the difference B − A,
    its percentile bootstrap interval (groups resampled with replacement, the same resample for
    both methods), a two-sided paired permutation p-value (A/B labels swapped per group: exactly
    over all 2^G swaps up to EXACT_MAX_GROUPS groups, else ``n_perm`` random swaps with
    p = (1 + #{|T*| >= |T|}) / (1 + n_perm); ``p_method`` says which) and per-group wins. Metrics
    the protocol leaves undefined or evaluate did not compute are listed in ``notes`` and skipped.
    Deterministic for a given ``seed``.
    """
    metrics = parse_metrics(metrics)
    shared, notes = _check_pair(a, b)
    aggregation = check_aggregation(aggregation or default_aggregation(a["protocol"]))
    if n_boot < 1 or n_perm < 1:
        raise CosalbenchError(None, "--n-boot and --n-perm must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise CosalbenchError(None, f"confidence {confidence} is not between 0 and 1")
    defined, skipped = [], []
    for metric in metrics:
        absent = [doc for doc in (a, b) if metric_value(doc, aggregation, metric) is None]
        if absent:
            skipped.append((absent[0], _absent_metric_note(absent[0], metric)))
        else:
            defined.append(metric)
    if not defined:
        raise CosalbenchError(
            source(skipped[0][0]), "; ".join(note for _, note in skipped), "nothing to compare"
        )
    notes += [f"{note}; skipped" for _, note in skipped]
    arrays_a, arrays_b = group_arrays(a, shared, defined), group_arrays(b, shared, defined)
    size = np.ones(len(shared)) if aggregation == "group_mean" else arrays_a.n_images

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(shared), np.full(len(shared), 1.0 / len(shared)), size=n_boot).astype(
        np.float64
    )
    swaps, p_method = label_swaps(len(shared), n_perm, rng)

    rows = []
    for metric in defined:
        full = size[None, :]
        value_a = float(batch_metric([(full, arrays_a)], metric)[0])
        value_b = float(batch_metric([(full, arrays_b)], metric)[0])
        observed = value_b - value_a
        boot = bootstrap_differences(arrays_a, arrays_b, metric, counts * size)
        perm = permutation_differences(arrays_a, arrays_b, metric, swaps, size)
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = (
            np.percentile(boot, [tail, 100.0 - tail]) if not np.isnan(boot).any() else (np.nan, np.nan)
        )
        b_wins, a_wins, ties = _wins(a, b, shared, metric)
        rows.append(
            {
                "metric": metric,
                "lower_is_better": metric in LOWER_IS_BETTER,
                "a": value_a,
                "b": value_b,
                "diff": observed,
                "ci_low": float(low),
                "ci_high": float(high),
                "p_value": permutation_p_value(perm, observed, p_method, len(shared)),
                "b_wins": b_wins,
                "a_wins": a_wins,
                "ties": ties,
            }
        )
        for doc, value in ((a, value_a), (b, value_b)):
            stored = metric_value(doc, aggregation, metric)
            if (
                len(shared) == len(doc["groups"])
                and not math.isnan(stored)
                and not math.isclose(value, stored, rel_tol=1e-9, abs_tol=1e-12)
            ):
                notes.append(
                    f"{metric} of {doc['method']} recomputed from its groups is {value:.6f}, the document says {stored:.6f}"
                )
    return {
        "dataset": a["dataset"],
        "protocol": a["protocol"],
        "aggregation": aggregation,
        "method_a": a["method"],
        "method_b": b["method"],
        "path_a": a.get("_path"),
        "path_b": b.get("_path"),
        "n_groups": len(shared),
        "n_images": int(arrays_a.n_images.sum()),
        "n_boot": n_boot,
        "n_perm": n_perm,
        "p_method": p_method,
        "n_permutations": len(swaps),
        "seed": seed,
        "confidence": confidence,
        "metrics": rows,
        "notes": notes,
    }


def comparison_json(result: dict) -> str:
    """``compare_results`` output as strict JSON (NaN written as null)."""

    def strict(value: object) -> object:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {key: strict(item) for key, item in value.items()}
        if isinstance(value, list):
            return [strict(item) for item in value]
        return value

    return json.dumps(strict(result), indent=2, allow_nan=False) + "\n"


def _p_method_text(result: dict) -> str:
    if result["p_method"] == "exact":
        return f"exact: all {result['n_permutations']} label swaps of {result['n_groups']} groups"
    return f"Monte-Carlo: {result['n_permutations']} random label swaps, (b + 1) / (m + 1)"


def _p_text(p: float) -> str:
    """Four decimals, or two significant digits below 0.001 (an exact p can be 2/2^16)."""
    return f"{p:.4f}" if math.isnan(p) or p >= 0.001 else f"{p:.2g}"


def format_comparison(result: dict, digits: int = 4) -> str:
    """A plain-text summary of ``compare_results`` output, one line per metric."""
    a, b = result["method_a"], result["method_b"]
    pct = round(result["confidence"] * 100)
    lines = [
        f"{result['dataset']}: B = {b} vs A = {a}  (protocol {result['protocol']}, {result['aggregation']}, "
        f"{result['n_groups']} groups, {result['n_images']} images)",
        f"difference B − A; {pct}% bootstrap CI over groups ({result['n_boot']} resamples), paired permutation "
        f"p ({_p_method_text(result)}), seed {result['seed']}",
        "",
    ]
    header = ["metric", "A", "B", "B − A", f"{pct}% CI", "p", "B wins", "A wins", "ties"]
    table = [header]
    for row in result["metrics"]:
        arrow = "↓" if row["lower_is_better"] else "↑"
        table.append(
            [
                f"{METRIC_LABELS[row['metric']][0]} {arrow}",
                f"{row['a']:.{digits}f}",
                f"{row['b']:.{digits}f}",
                f"{row['diff']:+.{digits}f}",
                f"[{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]",
                _p_text(row["p_value"]),
                str(row["b_wins"]),
                str(row["a_wins"]),
                str(row["ties"]),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append(
            "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)])
        )
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"
