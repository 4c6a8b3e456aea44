"""S-measure, E-measure, F-measure, PR/ROC curves and AUC computed from level histograms.

Every function works on counts (from :mod:`cosalbench.metrics.histogram`) and small per-level
lookup tables, never on full images; the protocols choose the conventions (eps, centroid rounding,
strict or non-strict binarisation, soft or binary GT) and call these helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

MATLAB_EPS = float(np.spacing(1))  # Matlab ``eps`` = 2**-52, PySODMetrics' EPS
BETA2 = 0.3  # beta^2 of the F-measure in every SOD/CoSOD convention


def precision_recall_f(
    tp: np.ndarray, positives: np.ndarray, n_fg: int | np.ndarray, beta2: float = BETA2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F-beta per binarisation (PySODMetrics/Matlab semantics, float64).

    Precision is 0 without positives, recall 0 without GT foreground, F 0 when P*R is 0. ``n_fg``
    broadcasts against ``tp`` (e.g. ``(M, 1)``: one GT per row).
    """
    precision = tp / np.where(positives == 0, 1, positives)
    recall = tp / np.maximum(n_fg, 1)
    numerator = (1 + beta2) * precision * recall
    denominator = np.where(numerator == 0, 1, beta2 * precision + recall)
    return precision, recall, numerator / denominator


def roc_rates(
    tp: np.ndarray, fp: np.ndarray, n_fg: int | np.ndarray, n_bg: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """True and false positive rates; a rate whose denominator is 0 is 0 (denominators broadcast)."""
    tpr = np.where(np.greater(n_fg, 0), tp / np.maximum(n_fg, 1), 0.0)
    fpr = np.where(np.greater(n_bg, 0), fp / np.maximum(n_bg, 1), 0.0)
    return tpr.astype(np.float64, copy=False), fpr.astype(np.float64, copy=False)


def _enhanced(a: np.ndarray | float, b: np.ndarray | float, eps: float) -> np.ndarray:
    """Enhanced alignment value ``((2ab / (a^2 + b^2 + eps)) + 1)^2 / 4`` of demeaned pred/GT values."""
    align = 2 * (a * b) / (a**2 + b**2 + eps)
    return (align + 1) ** 2 / 4


def e_measure_binary(
    tp: np.ndarray, fp: np.ndarray, n_fg: int | np.ndarray, n: int | np.ndarray
) -> np.ndarray:
    """E-measure of binarisations against a binary GT, by counts (PySODMetrics/Fan closed form).

    Empty GT: fraction of negatives; full GT: fraction of positives; both over ``n - 1 + eps``.
    Otherwise the four (prediction, GT) cases TP, FP, FN, TN are summed in that order, as PySOD does.
    ``n_fg`` and ``n`` broadcast against ``tp`` (e.g. ``(M, 1)``: one GT per row).
    """
    tp = np.asarray(tp)
    n_fg, n, _ = np.broadcast_arrays(np.asarray(n_fg, dtype=np.float64), np.asarray(n, dtype=np.float64), tp)
    positives = tp + fp
    fn = n_fg - tp
    counts = np.stack([tp, fp, fn, (n - positives) - fn])
    mean_pred = positives / n
    pred_fg, pred_bg = 1 - mean_pred, 0 - mean_pred
    mean_gt = n_fg / n
    gt_fg, gt_bg = 1 - mean_gt, 0 - mean_gt
    pred = np.stack([pred_fg, pred_fg, pred_bg, pred_bg])
    gt = np.stack([gt_fg, gt_bg, gt_fg, gt_bg])
    total = (_enhanced(pred, gt, MATLAB_EPS) * counts).sum(axis=0)
    total = np.where(n_fg == 0, n - positives, np.where(n_fg == n, positives, total))
    return total / (n - 1 + MATLAB_EPS)


def e_measure_soft(
    positives: np.ndarray, totals: np.ndarray, gt_values: np.ndarray, eps: float
) -> np.ndarray:
    """E-measure against a soft GT without special cases (eval-co-sod's per-pixel formula, by counts).

    ``positives`` is ``(G, T)``: pixels of GT class g that are positive at threshold t; ``totals``
    ``(G,)`` the pixels per class; ``gt_values`` ``(G,)`` the float32 GT value of each class. As in
    eval-co-sod, the means, demeaned values and per-pixel alignment are float32; the sum is float64.
    """
    f32 = np.float32
    n = int(totals.sum())
    mean_gt = f32(float(np.dot(gt_values.astype(np.float64), totals)) / n)
    mean_pred = (positives.sum(axis=0) / n).astype(f32)[None, :]
    gt_demeaned = (gt_values.astype(f32) - mean_gt)[:, None]

    def enhanced(pred_demeaned: np.ndarray) -> np.ndarray:
        align = (
            2
            * gt_demeaned
            * pred_demeaned
            / (gt_demeaned * gt_demeaned + pred_demeaned * pred_demeaned + f32(eps))
        )
        return ((align + 1) * (align + 1) / 4).astype(np.float64)

    negatives = totals[:, None] - positives
    total = (positives * enhanced(f32(1) - mean_pred) + negatives * enhanced(f32(0) - mean_pred)).sum(axis=0)
    return total / (n - 1 + eps)


def curve_summary(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """``maxfm meanfm maxem meanem``: max and mean over thresholds of the F and E curves."""
    return {key: float(value) for key, value in curve_summaries(curves).items()}


def curve_summaries(curves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`curve_summary` of curves with leading dimensions (one value per curve, thresholds last)."""
    fm, em = np.asarray(curves["fm"]), np.asarray(curves["em"])
    return {
        "maxfm": fm.max(axis=-1),
        "meanfm": fm.mean(axis=-1),
        "maxem": em.max(axis=-1),
        "meanem": em.mean(axis=-1),
    }


def trapezoid_auc(tpr: np.ndarray, fpr: np.ndarray) -> float | np.ndarray:
    """Area under a ROC given in ascending threshold order: stable sort on FPR, trapezoids, no endpoints.

    This is PySODMetrics' example code (curves flipped to ascending thresholds, ``argsort(kind="stable")``
    on x, ``np.trapz(y, x)``). Curves with leading dimensions (thresholds last) give one area each.
    """
    order = np.argsort(fpr, axis=-1, kind="stable")
    x, y = np.take_along_axis(fpr, order, axis=-1), np.take_along_axis(tpr, order, axis=-1)
    area = np.trapezoid(y, x, axis=-1)
    return float(area) if np.ndim(area) == 0 else area


# ---------------------------------------------------------------------------------------------------
# S-measure


def _object_scores(counts: np.ndarray, values: np.ndarray, eps: float, single_std: float) -> np.ndarray:
    """Fan's object score ``2m / (m^2 + 1 + std + eps)`` of the pixels counted per level (sample std).

    ``counts`` and ``values`` are ``(M, L)``: one row per prediction; a row without pixels scores NaN.
    """
    n = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (counts * values).sum(axis=-1) / n
        centred = values - mean[:, None]
        variance = (counts * (centred * centred)).sum(axis=-1) / (n - 1)
        std = np.where(n > 1, np.sqrt(variance), single_std)
        return np.where(n > 0, 2 * mean / (mean**2 + 1 + std + eps), math.nan)


def _region_scores(
    quadrants: np.ndarray,
    level_counts: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    means: dict[tuple[int, int], float],
    eps: float,
) -> np.ndarray:
    """Fan's area-weighted SSIM of the four quadrants from ``(M, 4, 2, L)`` bg/fg level counts.

    ``level_counts`` is ``quadrants.sum(axis=2)``; ``means`` overrides the prediction mean of some
    (prediction, quadrant) pairs; an empty quadrant scores NaN.
    """
    class_counts = quadrants.sum(axis=-1)  # (M, 4, 2): bg and fg pixels per quadrant
    n_bg, n_fg = class_counts[..., 0], class_counts[..., 1]
    n = n_bg + n_fg
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (level_counts * values[:, None, :]).sum(axis=-1) / n
        for (row, quadrant), mean in means.items():
            x[row, quadrant] = mean
        centred = values[:, None, :] - x[..., None]  # (M, 4, L)
        squares = (level_counts * (centred * centred)).sum(axis=-1)
        # per class, the sum over pixels of (p - x): the cross term is (1 - y) * fg_sum - y * bg_sum, which
        # is exactly 0 when the quadrant's GT is constant, as in the per-pixel formula
        class_sums = (quadrants * centred[:, :, None, :]).sum(axis=-1)
        y = n_fg / n
        denominator = n - 1 + eps
        sigma_x = squares / denominator
        sigma_y = (n_fg * (1 - y) ** 2 + n_bg * y**2) / denominator
        sigma_xy = ((1 - y) * class_sums[..., 1] - y * class_sums[..., 0]) / denominator
        alpha = 4 * x * y * sigma_xy
        beta = (x**2 + y**2) * (sigma_x + sigma_y)
        ssim = np.where(alpha != 0, alpha / (beta + eps), np.where(beta == 0, 1.0, 0.0))
    ssim = np.where(n == 0, math.nan, ssim) * weights
    total = ssim[:, 0] + ssim[:, 1]  # in quadrant order, as the per-quadrant sum does
    total += ssim[:, 2]
    total += ssim[:, 3]
    return total


def _quadrant_weights(shape: tuple[int, int], split: tuple[int, int]) -> tuple[float, float, float, float]:
    """Area fractions of the four quadrants (left-top, right-top, left-bottom, right-bottom)."""
    h, w = shape
    area = h * w
    y_split, x_split = split
    w_lt = x_split * y_split / area
    w_rt = y_split * (w - x_split) / area
    w_lb = (h - y_split) * x_split / area
    return w_lt, w_rt, w_lb, 1 - w_lt - w_rt - w_lb


def s_measures(
    quadrants: np.ndarray,
    values: np.ndarray,
    shapes: Sequence[tuple[int, int]],
    splits: Sequence[tuple[int, int]],
    *,
    eps: float = MATLAB_EPS,
    single_std: float = 0.0,
    constant_mean: Callable[[int, int], float] | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Structure measures of M predictions, each of its own binary GT, ``(M,)`` float64.

    ``quadrants`` holds ``(M, 4, 2, L)`` prediction x quadrant x (bg, fg) x level counts, ``values``
    ``(M, L)`` the normalised value of each level for each prediction, ``shapes[m]`` the image shape of
    prediction ``m`` and ``splits[m] = (Y, X)`` its GT's quadrant corner (rows ``[0, Y)`` and columns
    ``[0, X)`` form the left-top quadrant). ``constant_mean(m, q)`` supplies the reference's own mean for
    quadrant ``q`` of prediction ``m`` when it is constant (its floating-point mean decides whether SSIM
    is 1 or 0 there); by default the exact level value is used. The caller handles the
    all-background/all-foreground GT cases.
    """
    totals = quadrants[:, 0] + quadrants[:, 1]  # (M, 2, L)
    totals += quadrants[:, 2]
    totals += quadrants[:, 3]
    area = np.array([h * w for h, w in shapes], dtype=np.float64)
    gt_mean = totals[:, 1].sum(axis=-1) / area  # exact counts over exact areas
    fg_score = _object_scores(totals[:, 1], values, eps, single_std) * gt_mean
    bg_score = _object_scores(totals[:, 0], 1 - values, eps, single_std) * (1 - gt_mean)
    object_score = fg_score + bg_score

    weights = np.array([_quadrant_weights(shape, split) for shape, split in zip(shapes, splits, strict=True)])
    level_counts = quadrants[:, :, 0] + quadrants[:, :, 1]  # (M, 4, L)
    present = level_counts > 0
    means = {}
    for row, quadrant in zip(*np.nonzero(np.count_nonzero(present, axis=-1) == 1), strict=True):
        row, quadrant = int(row), int(quadrant)
        level = int(np.argmax(present[row, quadrant]))
        means[row, quadrant] = (
            float(values[row, level]) if constant_mean is None else constant_mean(row, quadrant)
        )
    region_score = _region_scores(quadrants, level_counts, values, weights, means, eps)
    score = object_score * alpha + region_score * (1 - alpha)
    return np.maximum(0.0, score)


def s_measure(
    quadrants: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, int],
    split: tuple[int, int],
    *,
    constant_mean: Callable[[int], float] | None = None,
    **options: float,
) -> float:
    """:func:`s_measures` of one prediction: ``(4, 2, L)`` counts, ``(L,)`` values, ``constant_mean(q)``.

    ``options`` are :func:`s_measures`' ``eps``, ``single_std`` and ``alpha``.
    """
    override = None if constant_mean is None else (lambda row, quadrant: constant_mean(quadrant))
    scores = s_measures(
        quadrants[None], np.asarray(values)[None], [shape], [split], constant_mean=override, **options
    )
    return float(scores[0])


def centroid_half_even(counts: np.ndarray) -> int:
    """PySODMetrics' centroid along one axis: numpy-round (half to even) of the 0-based mean, plus one."""
    total = int(counts.sum())
    weighted = int(np.dot(np.arange(counts.size, dtype=np.int64), counts))
    return int(np.round(weighted / total)) + 1


def centroid_half_away(counts: np.ndarray) -> int:
    """Fan's Matlab centroid along one axis: ``round`` (half away from zero) of the 1-based mean."""
    total = int(counts.sum())
    weighted = int(np.dot(np.arange(1, counts.size + 1, dtype=np.int64), counts))
    quotient = weighted / total
    floor = math.floor(quotient)
    return floor + (1 if quotient - floor >= 0.5 else 0)


def centroid_float32_no_offset(counts: np.ndarray) -> int:
    """eval-co-sod's centroid: float32 ``round(sum(count * j0) / total + 1e-20)``, 0-based, no +1."""
    total = np.float32(counts.sum())
    weighted = np.float32(np.dot(np.arange(counts.size, dtype=np.int64), counts))
    quotient = np.float32(weighted / total) + np.float32(1e-20)
    return int(np.round(quotient))
