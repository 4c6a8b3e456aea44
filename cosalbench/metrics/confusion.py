"""PySODMetrics 1.6.2's ``FmeasureV2`` family from per-image confusion counts (opt-in with ``--metrics``).

Each *handler* turns (TP, FP, TN, FN) into a number, a division by zero giving 0 as PySODMetrics'
``divide`` does. Every handler comes in the forms PySODMetrics offers, named as in its examples:

* ``max<h>`` / ``mean<h>``: the dynamic curve (256 thresholds ``>= k/255`` on the uint8-binned map),
  averaged over images threshold by threshold, then its max or mean;
* ``adp<h>``: adaptive threshold ``min(2 mean, 1)`` with ``>=``, averaged over images;
* ``sample_bi<h>``: binary map ``pred > 0.5``, the handler per image, averaged over images;
* ``overall_bi<h>``: binary map ``pred > 0.5``, counts summed over the images, then the handler once
  (``overall_biiou`` is the dataset-level "overall IoU").

Handlers: ``fm`` (F-beta, beta^2 = 0.3), ``pre``, ``rec``, ``sen`` (= recall), ``spec``, ``fpr``,
``iou``, ``dice``, ``ber``, ``oa`` (overall accuracy), ``kappa``. ``maxfm``, ``meanfm`` and ``adpfm``
are cosalbench's standard keys already, so the ``fm`` handler adds only its binary forms. Per image,
one row holds every handler's curve, adaptive and binary values and the binary counts; the dataset
numbers are reduced from those rows (:func:`summarise`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.measures import BETA2


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64, 0 where the denominator is 0 (PySODMetrics' ``divide``)."""
    denominator = np.array(denominator, dtype=np.float64)
    np.divide(numerator, denominator, out=denominator, where=denominator != 0)
    return denominator


def _precision(tp, fp, tn, fn):
    return _divide(tp, tp + fp)


def _recall(tp, fp, tn, fn):
    return _divide(tp, tp + fn)


def _f_measure(tp, fp, tn, fn):
    p, r = _precision(tp, fp, tn, fn), _recall(tp, fp, tn, fn)
    return _divide((BETA2 + 1) * p * r, BETA2 * p + r)


def _accuracy(tp, fp, tn, fn):
    return _divide(tp + tn, tp + fp + tn + fn)


def _kappa(tp, fp, tn, fn):
    chance = _divide((tp + fp) * (tp + fn) + (tn + fn) * (tn + tp), (tp + fp + tn + fn) ** 2)
    return _divide(_accuracy(tp, fp, tn, fn) - chance, 1 - chance)


def _balanced_error(tp, fp, tn, fn):
    return 1 - 0.5 * (_divide(tp, tp + fn) + _divide(tn, tn + fp))


HANDLERS: dict[str, Callable[..., np.ndarray]] = {
    "fm": _f_measure,
    "pre": _precision,
    "rec": _recall,
    "sen": _recall,
    "spec": lambda tp, fp, tn, fn: _divide(tn, tn + fp),
    "fpr": lambda tp, fp, tn, fn: _divide(fp, tn + fp),
    "iou": lambda tp, fp, tn, fn: _divide(tp, tp + fp + fn),
    "dice": lambda tp, fp, tn, fn: _divide(2 * tp, tp + fn + tp + fp),
    "ber": _balanced_error,
    "oa": _accuracy,
    "kappa": _kappa,
}
FORMS = ("max", "mean", "adp", "sample_bi", "overall_bi")
STANDARD = {"maxfm", "meanfm", "adpfm"}  # already among cosalbench's standard metrics
MEASURES = tuple(
    f"{form}{handler}" for handler in HANDLERS for form in FORMS if f"{form}{handler}" not in STANDARD
)


def parse_measures(names: Sequence[str]) -> tuple[str, ...]:
    """The requested FmeasureV2 measures in canonical order; a bare handler name means all its forms."""
    wanted = set()
    for name in names:
        if name in HANDLERS:
            wanted.update(
                measure for measure in MEASURES if measure.endswith(name) and _handler(measure) == name
            )
        elif name in MEASURES:
            wanted.add(name)
        else:
            raise CosalbenchError(
                None,
                f"unknown measure {name!r}",
                f"use a handler ({', '.join(HANDLERS)}) or one of {', '.join(MEASURES)}",
            )
    return tuple(measure for measure in MEASURES if measure in wanted)


def _handler(measure: str) -> str:
    for form in FORMS:
        if measure.startswith(form) and measure[len(form) :] in HANDLERS:
            return measure[len(form) :]
    raise KeyError(measure)


def handlers_of(measures: Sequence[str]) -> tuple[str, ...]:
    """The handlers the measures need, in HANDLERS order."""
    used = {_handler(measure) for measure in measures}
    return tuple(name for name in HANDLERS if name in used)


def image_row(
    handlers: Sequence[str], curve: np.ndarray, adaptive: np.ndarray, binary: np.ndarray, n_fg: int, n: int
) -> np.ndarray:
    """One image's row: per handler its curve (T points) and its adaptive and binary values, then the
    binary (TP, FP, TN, FN). ``curve`` is ``(2, T)`` positives (GT fg, GT bg) per threshold; ``adaptive``
    and ``binary`` are ``(2,)`` positives of one binarisation each."""

    def counts(tp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, ...]:
        return tp, fp, (n - n_fg) - fp, n_fg - tp

    parts = []
    for name in handlers:
        handler = HANDLERS[name]
        parts += [
            handler(*counts(curve[0], curve[1])),
            [handler(*counts(*adaptive))],
            [handler(*counts(*binary))],
        ]
    parts.append(np.array(counts(*binary), dtype=np.float64))
    return np.concatenate([np.asarray(part, dtype=np.float64).ravel() for part in parts])


def _values(rows: np.ndarray, handlers: Sequence[str], n_thresholds: int, overall: dict[str, float]) -> dict:
    mean = rows.mean(axis=0)
    values = {}
    width = n_thresholds + 2
    for i, name in enumerate(handlers):
        curve = mean[i * width : i * width + n_thresholds]
        values |= {
            f"max{name}": float(curve.max()),
            f"mean{name}": float(curve.mean()),
            f"adp{name}": float(mean[i * width + n_thresholds]),
            f"sample_bi{name}": float(mean[i * width + n_thresholds + 1]),
            f"overall_bi{name}": overall.get(name, math.nan),
        }
    return values


def summarise(
    rows: np.ndarray, measures: Sequence[str], n_thresholds: int, groups: Sequence[str] | None = None
) -> dict[str, float]:
    """Dataset values of ``measures`` from image rows ``(n_images, row length)`` (see :func:`image_row`).

    With ``groups`` (each row's group name) the ``group_mean`` convention: curves and per-image values
    averaged within each group and then over groups, ``overall_bi`` computed per group and averaged.
    """
    handlers = handlers_of(measures)
    if groups is None:
        counts = rows[:, -4:].sum(axis=0)
        overall = {name: float(HANDLERS[name](*counts)) for name in handlers}
        values = _values(rows, handlers, n_thresholds, overall)
    else:
        names = np.asarray(groups)
        members = [rows[names == group] for group in sorted(set(groups))]
        per_group = [summarise(member, measures, n_thresholds) for member in members]
        values = _values(np.stack([member.mean(axis=0) for member in members]), handlers, n_thresholds, {})
        values |= {
            key: float(np.mean([entry[key] for entry in per_group]))
            for key in measures
            if key.startswith("overall_bi")
        }
    return {measure: values[measure] for measure in measures}
