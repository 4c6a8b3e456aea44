"""Curve figures of several methods on one dataset (contract 6), styled like CoSOD papers' figures.

Panels: ``pr`` precision against recall, ``fm`` F-measure against threshold, ``em`` E-measure
against threshold, ``roc`` true against false positive rate. Methods are ordered by max F (best
first) in every legend; the max-F point is marked on the PR and F panels. Files are written
atomically, as PNG or PDF by suffix, with fixed metadata so reruns give identical bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cosalbench.errors import CosalbenchError
from cosalbench.io import atomic_path
from cosalbench.metrics.report import LOWER_IS_BETTER, METRIC_LABELS, parse_names
from cosalbench.metrics.results_io import check_aggregation
from cosalbench.metrics.runs import run_labels

CURVE_KINDS = ("pr", "fm", "em", "roc")
# format -> metadata that keeps the file free of dates and version strings
METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}
LINESTYLES = ("-", "--", "-.", ":")
PANEL_SIZE = 4.0  # inches per panel
DPI = 150


def parse_curves(text: str | Sequence[str]) -> list[str]:
    """``"pr,fm"`` (or a list) -> validated curve kinds, in the given order."""
    return parse_names(text, CURVE_KINDS, "curve kind")


def _curve(doc: dict, aggregation: str, key: str) -> list[float] | None:
    values = doc["curves"].get(aggregation, {}).get(key)
    return None if values is None or any(v is None for v in values) else values


def _max_f(doc: dict, aggregation: str) -> float | None:
    fm = _curve(doc, aggregation, "fm")
    return None if not fm else max(fm)


def order_by_max_f(results: Sequence[dict], aggregation: str) -> list[int]:
    """Indices of ``results`` by decreasing max F (the legend order); ties and missing F by label."""
    labels = _labels(results)

    def key(i: int) -> tuple[float, str]:
        max_f = _max_f(results[i], aggregation)
        return (math.inf if max_f is None else -max_f, labels[i])

    return sorted(range(len(results)), key=key)


def _labels(results: Sequence[dict]) -> list[str]:
    """Method names, with the protocol added when a name or the protocols repeat, and the seed or
    training set where several runs of one method remain (``run_labels``)."""
    names = [doc["method"] for doc in results]
    if len(set(names)) == len(names) and len({doc["protocol"] for doc in results}) == 1:
        return names
    labels = [f"{doc['method']} ({doc['protocol']})" for doc in results]
    return labels if len(set(labels)) == len(labels) else run_labels(results)


def _draw(ax: Axes, kind: str, doc: dict, label: str, aggregation: str, style: dict) -> bool:
    """Draw one method's ``kind`` curve on ``ax``; False when the document lacks that curve."""
    fm = _curve(doc, aggregation, "fm")
    threshold = _curve(doc, aggregation, "threshold")
    if kind == "pr":
        x, y = _curve(doc, aggregation, "recall"), _curve(doc, aggregation, "precision")
        text = f"maxF {max(fm):.3f}" if fm else None
    elif kind in ("fm", "em"):
        x, y = threshold, _curve(doc, aggregation, kind)
        text = f"max{kind[0].upper()} {max(y):.3f}" if y else None
    else:
        x, y = _curve(doc, aggregation, "fpr"), _curve(doc, aggregation, "tpr")
        auc = doc[aggregation].get("auc")
        text = None if auc is None else f"AUC {auc:.3f}"
    if x is None or y is None:
        return False
    ax.plot(x, y, label=label if text is None else f"{label} ({text})", **style)
    if kind in ("pr", "fm") and fm:
        best = max(range(len(fm)), key=fm.__getitem__)
        ax.plot([x[best]], [y[best]], marker="o", markersize=5, color=style["color"], linestyle="none")
    return True


def _style_axes(ax: Axes, kind: str, doc: dict, aggregation: str) -> None:
    names = {"pr": ("Recall", "Precision"), "fm": ("Threshold", "F-measure"), "em": ("Threshold", "E-measure"),
             "roc": ("False positive rate", "True positive rate")}  # fmt: skip
    ax.set_xlabel(names[kind][0])
    ax.set_ylabel(names[kind][1])
    threshold = _curve(doc, aggregation, "threshold")
    if kind in ("fm", "em") and threshold:
        ax.set_xlim(min(threshold), max(threshold))
    else:
        ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, linestyle=":", linewidth=0.6)
    ax.legend(loc="lower left" if kind in ("pr", "fm") else "lower right", fontsize=7, frameon=True)


def plot_curves(
    results: Sequence[dict],
    out: str | Path,
    curves: Sequence[str] = ("pr", "fm"),
    aggregation: str = "image_mean",
    title: str | None = None,
) -> Path:
    """Draw the curves of several result documents of one dataset, one panel per curve kind.

    Writes ``out`` (``.png`` or ``.pdf``) atomically and returns it. Methods are sorted by max F;
    a method lacking a curve is left out of that panel; a panel no method can fill is an error.
    """
    out = Path(out)
    _figure_format(out)
    kinds = parse_curves(curves)
    check_aggregation(aggregation)
    if not results:
        raise CosalbenchError(None, "no result documents to plot")
    datasets = sorted({doc["dataset"] for doc in results})
    if len(datasets) > 1:
        raise CosalbenchError(
            None,
            f"results of several datasets ({', '.join(datasets)})",
            "plot one dataset at a time (--dataset)",
        )
    labels = _labels(results)
    order = order_by_max_f(results, aggregation)
    palette = [f"C{i % 10}" for i in range(len(order))]
    fig = Figure(figsize=(PANEL_SIZE * len(kinds), PANEL_SIZE + 0.4), layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        drawn = 0
        for rank, i in enumerate(order):
            style = {
                "color": palette[rank],
                "linestyle": LINESTYLES[(rank // 10) % len(LINESTYLES)],
                "linewidth": 1.4,
            }
            drawn += _draw(ax, kind, results[i], labels[i], aggregation, style)
        if not drawn:
            raise CosalbenchError(
                None, f"no result holds the curves of the '{kind}' panel under {aggregation}"
            )
        _style_axes(ax, kind, results[order[0]], aggregation)
    protocols = ", ".join(sorted({doc["protocol"] for doc in results}))
    fig.suptitle(title if title is not None else f"{datasets[0]} ({protocols}, {aggregation})")
    return _save(fig, out)


def _figure_format(out: Path) -> str:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in METADATA:
        raise CosalbenchError(out, "unsupported figure format", "name the output .png or .pdf")
    return fmt


def _save(fig: Figure, out: Path) -> Path:
    """Write ``fig`` to ``out`` atomically, in the format its suffix names, with fixed metadata."""
    fmt = _figure_format(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    return out


def plot_group_differences(
    a: dict, b: dict, out: str | Path, metric: str = "sm", title: str | None = None
) -> Path:
    """One bar per shared group: B − A on ``metric`` (per-group values), sorted, green where B is better.

    Shows at a glance whether a difference comes from a few groups or from all of them.
    """
    out = Path(out)
    _figure_format(out)
    rows = []
    for group in sorted(set(a["groups"]) & set(b["groups"])):
        va = a["groups"][group].get("metrics", {}).get(metric)
        vb = b["groups"][group].get("metrics", {}).get(metric)
        if va is not None and vb is not None and not (math.isnan(va) or math.isnan(vb)):
            rows.append((vb - va, group))
    if not rows:
        raise CosalbenchError(
            None, f"{a['method']} and {b['method']} share no group with a value of {metric}"
        )
    rows.sort()
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    fig = Figure(figsize=(6.0, max(3.0, 0.16 * len(rows) + 1.2)), layout="constrained")
    ax = fig.subplots()
    ax.barh(range(len(rows)), [d for d, _ in rows], color=["C2" if sign * d > 0 else "C3" for d, _ in rows])
    ax.set_yticks(range(len(rows)), labels=[g for _, g in rows], fontsize=6)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.grid(True, axis="x", linestyle=":", linewidth=0.6)
    ax.set_xlabel(
        f"{METRIC_LABELS[metric][0]}: {b['method']} − {a['method']} per group (green: {b['method']} better)"
    )
    ax.set_title(
        title if title is not None else f"{a['dataset']} ({a['protocol']}), {len(rows)} groups", fontsize=9
    )
    return _save(fig, out)
