"""Why do evaluators disagree? The same maps scored under every protocol, differences attributed.

For each (method, dataset) the maps are re-scored under the three protocols and both aggregations.
``pysodmetrics`` with ``image_mean`` is the reference; the difference of every other column is split
into the effect of each convention, measured by re-scoring the target protocol with *one* convention
set back to the reference's (everything else unchanged):

* ``eval-co-sod``: its 255 thresholds (``i/254``) instead of 256 (``k/255``); soft GT (``y/255``)
  instead of GT binarised at ``> 128``; PIL reading and bilinear resizing instead of OpenCV's;
* ``cosal-matlab``: E-measure binarised with ``>`` instead of ``>=``; Matlab's colon-operator
  thresholds ``1:-1/255:0`` (some 1 ulp off ``k/255``) instead of ``k/255``; the adaptive E threshold
  ``2·mean`` not clamped to 1; ``imread`` (first channel) and bicubic ``imresize`` instead of OpenCV;
* both aggregations: group mean (``group_mean``) instead of the flat mean over images.

What no single named convention explains (interactions and the conventions not modelled here:
float32, constant maps, MAE on raw maps, S-measure centroid rounding, Matlab's mapminmax gain) is
reported as ``other``. Decoded images are shared between scorers that read files the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.aggregate import aggregate_groups
from cosalbench.metrics.evaluate import Job, plan_evaluation
from cosalbench.metrics.protocols import AGGREGATIONS, PROTOCOLS, ImageScores, Protocol, get_protocol
from cosalbench.metrics.report import METRIC_LABELS

REFERENCE = ("pysodmetrics", "image_mean")
SHOWN = 5e-5  # smallest |difference| explained (the 4th decimal)
Column = tuple[str, str]  # (protocol, aggregation)


@dataclass(frozen=True)
class Scorer:
    """A protocol, possibly with its GT or prediction reading taken from elsewhere."""

    key: str
    protocol: Protocol
    gt_reader: str  # name of the reading convention (decoded images are shared by name)
    pred_reader: str
    read_gt: Callable[[Path], np.ndarray]
    read_pred: Callable[[Path, tuple[int, int]], np.ndarray]


@dataclass(frozen=True)
class Convention:
    """One way a protocol differs from the reference, and the scorer with it set back."""

    key: str
    label: str
    reverted: Scorer


def _plain(name: str) -> Scorer:
    spec = get_protocol(name)
    return Scorer(name, spec, name, name, spec.read_gt, spec.read_pred)


def _binarised(read_gt: Callable[[Path], np.ndarray]) -> Callable[[Path], np.ndarray]:
    def read(path: Path) -> np.ndarray:
        return np.where(read_gt(path) > 128, 255, 0).astype(np.uint8)

    return read


def conventions(protocol: str) -> list[Convention]:
    """The conventions of ``protocol`` that differ from the reference, each with its reverted scorer."""
    reference = get_protocol(REFERENCE[0])
    spec = get_protocol(protocol)
    base = _plain(protocol)
    opencv_pred = {"pred_reader": reference.name, "read_pred": reference.read_pred}
    if protocol == "eval-co-sod":
        k_over_255 = (np.arange(256) / np.float32(255)).astype(np.float32)
        return [
            Convention(
                "thresholds",
                "255 thresholds (i/254) instead of 256 (k/255)",
                dataclasses.replace(
                    base, key="thresholds", protocol=dataclasses.replace(spec, thresholds=k_over_255)
                ),
            ),
            Convention(
                "soft_gt",
                "soft GT (y/255) instead of GT binarised at > 128",
                dataclasses.replace(
                    base, key="soft_gt", gt_reader="binarised", read_gt=_binarised(spec.read_gt)
                ),
            ),
            Convention(
                "resizing",
                "PIL reading and bilinear resizing instead of OpenCV",
                dataclasses.replace(base, key="resizing", **opencv_pred),
            ),
        ]
    if protocol == "cosal-matlab":
        return [
            Convention(
                "e_strict",
                "E-measure binarised with > instead of >=",
                dataclasses.replace(base, key="e_strict", protocol=dataclasses.replace(spec, e_strict=False)),
            ),
            Convention(
                "colon_thresholds",
                "Matlab's 1:-1/255:0 thresholds (36 sit 1 ulp off k/255)",
                dataclasses.replace(
                    base,
                    key="colon_thresholds",
                    protocol=dataclasses.replace(spec, thresholds=np.arange(256) / 255),
                ),
            ),
            Convention(
                "adaptive_e",
                "adaptive E threshold 2·mean not clamped to 1",
                dataclasses.replace(
                    base, key="adaptive_e", protocol=dataclasses.replace(spec, clamp_adaptive_e=True)
                ),
            ),
            Convention(
                "resizing",
                "imread (first channel) and bicubic imresize instead of OpenCV",
                dataclasses.replace(base, key="resizing", **opencv_pred),
            ),
        ]
    return []


AGGREGATION_LABEL = "group mean instead of the flat mean over images"
OTHER_LABELS = {  # what the named conventions leave out, per protocol
    "pysodmetrics": "other",
    "eval-co-sod": "other (MAE on raw maps, float32, constant maps to 0, S centroid, E without empty-GT cases)",
    "cosal-matlab": "other (mapminmax gain, S centroid rounding, GT reading)",
}


def score_job(job: Job, scorers: Sequence[Scorer]) -> dict[str, dict]:
    """``{scorer key: aggregate_groups(...)}`` of every scorer over the pairs of ``job``."""
    rows: dict[str, list[ImageScores]] = {s.key: [] for s in scorers}
    for pair in job.pairs:
        gts: dict[str, np.ndarray] = {}
        preds: dict[tuple[str, tuple[int, int]], np.ndarray] = {}
        for scorer in scorers:
            try:
                if scorer.gt_reader not in gts:
                    gts[scorer.gt_reader] = scorer.read_gt(pair.gt)
                gt = gts[scorer.gt_reader]
                pred_key = (scorer.pred_reader, gt.shape[:2])
                if pred_key not in preds:
                    preds[pred_key] = scorer.read_pred(pair.pred, gt.shape[:2])
                rows[scorer.key].append(scorer.protocol.score(preds[pred_key], gt))
            except CosalbenchError as exc:
                if exc.path is not None:
                    raise
                raise CosalbenchError(pair.pred, exc.problem, exc.hint) from exc
    groups = [pair.group for pair in job.pairs]
    return {s.key: aggregate_groups(rows[s.key], groups, s.protocol) for s in scorers}


@dataclass
class Explanation:
    """One (method, dataset): values per column, and per column and metric the attributed terms."""

    method: str
    dataset: str
    n_images: int
    metrics: list[str]
    values: dict[Column, dict[str, float | None]]
    terms: dict[Column, dict[str, list[tuple[str, float]]]]

    def difference(self, column: Column, metric: str) -> float | None:
        """``column`` minus the reference on ``metric`` (None where either is undefined or NaN)."""
        value, ref = self.values[column].get(metric), self.values[REFERENCE].get(metric)
        if value is None or ref is None or math.isnan(value) or math.isnan(ref):
            return None
        return value - ref

    def cause(self, column: Column, metric: str) -> str | None:
        """The convention behind most of the difference (None when there is nothing to explain)."""
        terms = self.terms.get(column, {}).get(metric, [])
        total = sum(abs(d) for _, d in terms)
        if not terms or total < SHOWN:
            return None
        label, delta = max(terms, key=lambda t: abs(t[1]))
        return (
            label
            if abs(delta) >= 0.5 * total
            else "several: "
            + ", ".join(name for name, d in sorted(terms, key=lambda t: -abs(t[1])) if abs(d) >= SHOWN)
        )


def _metrics_of(summary: dict) -> dict[str, float | None]:
    return dict(summary["metrics"])


def explain_job(job: Job, metrics: Sequence[str]) -> Explanation:
    """Re-score ``job`` under every protocol and every reverted convention and attribute differences."""
    scorers = [_plain(name) for name in PROTOCOLS]
    reverted = {name: conventions(name) for name in PROTOCOLS}
    for name in PROTOCOLS:
        scorers += [dataclasses.replace(c.reverted, key=f"{name}/{c.key}") for c in reverted[name]]
    scored = score_job(job, scorers)
    values = {(p, a): _metrics_of(scored[p][a]) for p in PROTOCOLS for a in AGGREGATIONS}
    terms: dict[Column, dict[str, list[tuple[str, float]]]] = {}
    for protocol in PROTOCOLS:
        for aggregation in AGGREGATIONS:
            column = (protocol, aggregation)
            if column == REFERENCE:
                continue
            terms[column] = {}
            for metric in metrics:
                target, ref = values[column].get(metric), values[REFERENCE].get(metric)
                if target is None or ref is None or math.isnan(target) or math.isnan(ref):
                    continue
                flat = values[(protocol, "image_mean")][metric]
                parts = []
                if aggregation != "image_mean":
                    parts.append((AGGREGATION_LABEL, target - flat))
                for convention in reverted[protocol]:
                    back = scored[f"{protocol}/{convention.key}"]["image_mean"]["metrics"].get(metric)
                    if back is not None and not math.isnan(back):
                        parts.append((convention.label, flat - back))
                parts.append((OTHER_LABELS[protocol], (target - ref) - sum(d for _, d in parts)))
                terms[column][metric] = parts
    return Explanation(job.method, job.dataset, len(job.pairs), list(metrics), values, terms)


def explain(
    docs: Sequence[dict], pred_root: Path, data_root: Path | None, metrics: Sequence[str]
) -> list[Explanation]:
    """One Explanation per (method, dataset) of ``docs``, re-scored from the maps under ``pred_root``."""
    wanted = list(dict.fromkeys((doc["method"], doc["dataset"]) for doc in docs))
    found = []
    for dataset in dict.fromkeys(d for _, d in wanted):
        plan = plan_evaluation(pred_root, [dataset], data_root)
        jobs = {job.method: job for job in plan.jobs}
        for method, name in wanted:
            if name != dataset:
                continue
            if method not in jobs:
                raise CosalbenchError(
                    Path(pred_root) / method / dataset,
                    f"no prediction folder of method {method!r}",
                    "pass --pred-root, the prediction folder given to 'cosalbench evaluate'",
                )
            found.append(explain_job(jobs[method], metrics))
    return found


def mismatches(
    explanations: Sequence[Explanation], docs: Sequence[dict], tolerance: float = 1e-9
) -> list[str]:
    """Documents whose numbers differ from the re-scored ones (maps or data changed since evaluation?)."""
    by_key = {(e.method, e.dataset): e for e in explanations}
    notes = []
    for doc in docs:
        found = by_key.get((doc["method"], doc["dataset"]))
        if found is None or doc["protocol"] not in PROTOCOLS:
            continue
        for aggregation in AGGREGATIONS:
            for metric in found.metrics:
                a, b = doc[aggregation].get(metric), found.values[(doc["protocol"], aggregation)].get(metric)
                if a is not None and b is not None and not math.isnan(b) and abs(a - b) > tolerance:
                    notes.append(
                        f"{doc.get('_path', doc['method'])}: {metric} ({aggregation}) is {a:.6f} in the document but "
                        f"{b:.6f} re-scored from the maps (were they changed after 'evaluate'?)"
                    )
                    break
    return notes


# ----------------------------------------------------------------------------------------- text


def _cell(value: float | None, delta: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "nan"
    return f"{value:.4f}" if delta is None else f"{value:.4f} ({delta:+.4f})"


def render_values(
    title: str,
    columns: Sequence[Column],
    metrics: Sequence[str],
    value: Callable[[Column, str], float | None],
) -> list[str]:
    """A text table: one row per metric, one column per (protocol, aggregation); Δ against the first."""
    header = [["metric", *(c[0] for c in columns)], ["", *(c[1] for c in columns)]]
    body = []
    for metric in metrics:
        ref = value(columns[0], metric)
        cells = [METRIC_LABELS[metric][0]]
        for i, column in enumerate(columns):
            v = value(column, metric)
            ok = v is not None and ref is not None and not (math.isnan(v) or math.isnan(ref))
            cells.append(_cell(v, v - ref if ok and i > 0 else None))
        body.append(cells)
    rows = header + body
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def render(explanations: Sequence[Explanation]) -> str:
    """The printout of ``report --explain``: values side by side, then what causes each difference."""
    blocks = []
    columns = [(p, a) for p in PROTOCOLS for a in AGGREGATIONS]
    for e in explanations:
        lines = render_values(
            f"{e.method} on {e.dataset} ({e.n_images} images): every protocol and aggregation, "
            f"(Δ) against {REFERENCE[0]}, {REFERENCE[1]}",
            columns,
            e.metrics,
            lambda column, metric, e=e: e.values[column].get(metric),
        )
        lines.append(
            "why (re-scored with one convention set back to the reference's at a time; group_mean lines "
            "only where grouping changes the number):"
        )
        explained = 0
        for column in columns[1:]:
            for metric in e.metrics:
                delta, cause = e.difference(column, metric), e.cause(column, metric)
                terms = e.terms[column].get(metric, [])
                if column[1] != "image_mean" and all(
                    abs(d) < SHOWN for label, d in terms if label == AGGREGATION_LABEL
                ):
                    continue  # same as the image_mean line of this protocol
                if delta is None or cause is None or abs(delta) < SHOWN:
                    continue
                explained += 1
                parts = [f"{label} {d:+.4f}" for label, d in terms if abs(d) >= SHOWN]
                detail = f"  [{'; '.join(parts)}]" if len(parts) > 1 else ""
                lines.append(
                    f"  {column[0]}, {column[1]}: {METRIC_LABELS[metric][0]} {delta:+.4f} <- {cause}{detail}"
                )
        if not explained:
            lines.append("  no difference of 0.0001 or more")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_documents(docs: Sequence[dict], metrics: Sequence[str]) -> str:
    """Side by side from the documents alone (no maps): every protocol present, both aggregations."""
    blocks = []
    for method, dataset in dict.fromkeys((d["method"], d["dataset"]) for d in docs):
        found = {d["protocol"]: d for d in docs if d["method"] == method and d["dataset"] == dataset}
        order = [p for p in PROTOCOLS if p in found] + [p for p in found if p not in PROTOCOLS]
        columns = [(p, a) for p in order for a in AGGREGATIONS]
        lines = render_values(
            f"{method} on {dataset}: (Δ) against {columns[0][0]}, {columns[0][1]}",
            columns,
            metrics,
            lambda column, metric, found=found: found[column[0]][column[1]].get(metric),
        )
        blocks.append("\n".join(lines))
    note = "(pass --pred-root and --data-root to re-score the maps and name the convention behind each difference)"
    return "\n\n".join(blocks) + "\n" + note + "\n"
