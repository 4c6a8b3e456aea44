"""Per-image joint level histograms: the one pass over the pixels every measure is derived from.

A prediction with ``L`` grey levels (256 for 8-bit, 65536 for 16-bit) and a ground truth mapped to
``G`` classes (2 for a binary mask, one per distinct grey level for a soft mask) give a histogram of
shape ``(G, L)``; with an S-measure split point it is ``(4, G, L)``, one slab per quadrant in the order
left-top, right-top, left-bottom, right-bottom. Thresholding the prediction at any value keeps the
levels above a cut, so every threshold curve is read from reversed cumulative sums of these counts.
"""

from __future__ import annotations

import numpy as np

from cosalbench.metrics import _kernels


def class_quadrant_index(gt_class: np.ndarray, n_classes: int, split: tuple[int, int] | None) -> np.ndarray:
    """Per-pixel bin ``class + n_classes * quadrant`` (quadrants as in :func:`level_histogram`).

    It depends on the GT only, so it is computed once and reused for every prediction of that GT; uint8
    when the bins fit (the compiled count of 8-bit maps), else intp.
    """
    n_bins = (1 if split is None else 4) * n_classes
    index = gt_class.astype(np.uint8 if n_bins <= 256 else np.intp)
    if split is not None:
        y, x = split
        index[:y, x:] += n_classes
        index[y:, :x] += 2 * n_classes
        index[y:, x:] += 3 * n_classes
    return index


def count_levels(
    levels: np.ndarray, index: np.ndarray, n_bins: int, n_levels: int, dtype: type = np.int64
) -> np.ndarray:
    """``(n_bins, n_levels)`` counts of pixels per (bin of :func:`class_quadrant_index`, level).

    ``dtype`` float64 holds every count exactly too, and saves the casts of later float arithmetic.
    """
    if levels.dtype == np.uint8 and index.dtype == np.uint8 and levels.size < 1 << 32:
        counts = np.empty((n_bins, 256))
        _kernels.count_levels_u8(np.ascontiguousarray(levels), np.ascontiguousarray(index), n_bins, counts)
        return counts.astype(dtype, copy=False)[:, :n_levels]
    key = index.astype(np.intp)
    key *= n_levels
    key += levels
    counts = np.bincount(key.ravel(), minlength=n_bins * n_levels).reshape(n_bins, n_levels)
    return counts.astype(dtype, copy=False)


def level_histogram(
    levels: np.ndarray,
    gt_class: np.ndarray,
    n_classes: int,
    n_levels: int,
    split: tuple[int, int] | None = None,
) -> np.ndarray:
    """Count pixels per (quadrant, GT class, prediction level) in one pass.

    ``levels`` holds integer grey levels in ``[0, n_levels)``, ``gt_class`` integer classes in
    ``[0, n_classes)`` (a bool mask works), both of the same 2-D shape. ``split=(y, x)`` cuts the image
    into rows ``[0, y)``/``[y, H)`` and columns ``[0, x)``/``[x, W)`` and returns ``(4, G, L)``;
    without it the result is ``(G, L)``. Counts are int64. 8-bit maps with few classes use the compiled
    ``count_levels_u8`` (one pass, four partial tables); anything else one ``np.bincount`` over
    ``level + L * (class + G * quadrant)``.
    """
    n_bins = (1 if split is None else 4) * n_classes
    counts = count_levels(levels, class_quadrant_index(gt_class, n_classes, split), n_bins, n_levels)
    return counts.reshape((n_classes, n_levels) if split is None else (4, n_classes, n_levels))


def tail_sums(hist: np.ndarray) -> np.ndarray:
    """Reversed cumulative sums along the level axis, ``(..., L + 1)``: entry ``L - c`` counts levels ``>= c``."""
    tail = np.zeros(hist.shape[:-1] + (hist.shape[-1] + 1,), dtype=hist.dtype)
    np.cumsum(hist[..., ::-1], axis=-1, out=tail[..., 1:])
    return tail


def at_or_above(tails: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Pixels with level ``>= cut`` for each cut, from :func:`tail_sums`: ``(..., len(cuts))``.

    ``cuts`` of shape ``(M, k)`` gives each of the ``M`` leading rows of ``tails`` its own cuts.
    """
    index = tails.shape[-1] - 1 - cuts
    if index.ndim == 1:
        return tails[..., index]
    index = index.reshape(index.shape[:1] + (1,) * (tails.ndim - 2) + index.shape[1:])
    return np.take_along_axis(tails, index, axis=-1)


def threshold_cuts(values: np.ndarray, thresholds: np.ndarray, strict: bool = False) -> np.ndarray:
    """Index of the first level kept by each threshold, for a non-decreasing per-level ``values`` LUT.

    A pixel of level ``k`` is positive at threshold ``t`` when ``values[k] >= t`` (``> t`` if
    ``strict``); since ``values`` is monotone the positives are exactly the levels ``>= cut``.
    ``(M, L)`` values with ``(M, k)`` thresholds give ``(M, k)`` cuts, row by row.
    """
    side = "right" if strict else "left"
    if values.ndim == 1:
        return np.searchsorted(values, thresholds, side=side)
    rows = zip(values, thresholds, strict=True)
    return np.stack([np.searchsorted(row, wanted, side=side) for row, wanted in rows])
