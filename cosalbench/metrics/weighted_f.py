"""Weighted F-measure (Margolin et al., CVPR 2014) as in Fan's ``original_WFb.m`` and PySODMetrics.

This is the one measure that needs the full image (a distance transform and a 7x7 Gaussian filter),
so it is optional. It is split in two so that many predictions of one GT share the expensive part,
and each part only touches the pixels that can change the result:

* :func:`ground_terms` (once per GT). The foreground is cut into clusters along empty bands of rows
  and columns (an XY-cut), each with a *window*: its bounding box grown by the filter radius (3).
  Only background pixels of the *band* (within 3 pixels of the foreground, in either axis) reach a
  foreground pixel through the filter, so only they need their nearest foreground pixel: the first
  foreground pixel among the offsets at most 3 * sqrt(2) away, tried nearest first, then leftmost
  column, then upper row, which is how PySODMetrics' ``distance_transform_edt`` of the whole image
  (scipy's feature transform) breaks ties between equally near pixels. Each window pixel records the
  image pixel whose error it carries into the filter (itself, its nearest foreground pixel, or none).
  Every background pixel also gets the importance weight ``2 - 0.5 ** (d / 5)`` (``d`` exact: the
  compiled ``squared_distances`` gives the integer squared distance, square-rooted in float64 as scipy
  does).
* :func:`weighted_f_many` (the predictions of one GT together): one call of the compiled
  ``weighted_f_terms``. The weighted false positives are ``sum(values[level] * importance)`` over the
  image (a background pixel's error is its value), for all the maps in one pass over tiles of the
  importance. Then, map by map, each window is filled, row by row, with the errors its pixels carry
  (only in the columns within the filter radius of the foreground of the rows nearby), the 7x7
  Gaussian (sigma 5, normalised like Matlab's ``fspecial``) runs as a row pass (kept for the last 7
  rows only) and a column pass at the row's foreground pixels, zeros outside the image as
  PySODMetrics' ``convolve``, and ``min(E, EA)`` is summed over the foreground. This equals
  PySODMetrics' 2-D ``convolve`` up to float rounding (parity is tested to 1e-9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cosalbench.metrics import _kernels
from cosalbench.metrics.measures import MATLAB_EPS

_RADIUS = 3  # of the 7x7 filter
# a band pixel is within 3 pixels of the foreground in both axes, so its nearest foreground pixel is
# at most 3 * sqrt(2) < 4 + 1 away: within 4 pixels in either axis
_REACH = 4
# clusters further apart than this (empty rows or columns between them) have disjoint windows
_GAP = 2 * _RADIUS
# more clusters than this (a speckled GT) are scored in one window: per-window overhead would dominate
_MAX_WINDOWS = 16
# images whose largest squared distance reaches this (a diagonal of about 2,000) compute the importance
# of each pixel instead of reading a table of one per squared distance (which would pass 32 MB)
_LARGEST_TABLE = 1 << 22

Box = tuple[int, int, int, int]  # top, bottom, left, right (half-open)


def _gaussian_1d(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """The normalised 1-D factor of ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2
    x = np.arange(-half, half + 1)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


_KERNEL = _gaussian_1d()


@dataclass(frozen=True, eq=False)
class WeightedFGround:
    """Everything the weighted F needs from one binary GT, shared by every prediction scored against it."""

    n_fg: int
    windows: np.ndarray  # int64 rows (top, left, height, width, foreground pixels): disjoint windows
    sources: np.ndarray  # int32, per window pixel (window by window, row by row): the image pixel whose
    # error it carries into the filter (itself on the foreground, the nearest foreground pixel on the
    # band, -1 elsewhere: no pixel the filter reads at the foreground)
    window_fg: np.ndarray  # int32, window by window: window-local indices of the foreground pixels
    spans: np.ndarray  # int32, two per window row: the columns [lo, hi) of the foreground within the
    # filter radius of that row, where the row pass is read (0, 0: none)
    importance: np.ndarray  # (H * W,) float64: 2 - 0.5 ** (d / 5) on background, 0 on foreground


def _tight(mask: np.ndarray, box: Box) -> Box:
    """The bounding box of the foreground inside ``box`` (which holds some)."""
    top, _, left, _ = box
    part = mask[box[0] : box[1], box[2] : box[3]]
    rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
    return top + int(rows[0]), top + int(rows[-1]) + 1, left + int(cols[0]), left + int(cols[-1]) + 1


def _cut(mask: np.ndarray, box: Box, axis: int) -> list[Box]:
    """``box`` cut along its runs of more than ``_GAP`` empty rows (axis 0) or columns (axis 1)."""
    top, bottom, left, right = box
    lines = np.flatnonzero(mask[top:bottom, left:right].any(axis=1 - axis))
    breaks = np.flatnonzero(np.diff(lines) > _GAP)
    if breaks.size == 0:
        return [box]
    starts, stops = np.r_[lines[0], lines[breaks + 1]], np.r_[lines[breaks], lines[-1]] + 1
    if axis == 0:
        return [_tight(mask, (top + a, top + b, left, right)) for a, b in zip(starts, stops, strict=True)]
    return [_tight(mask, (top, bottom, left + a, left + b)) for a, b in zip(starts, stops, strict=True)]


def _clusters(mask: np.ndarray) -> list[Box]:
    """Bounding boxes of the foreground's clusters: cut along empty bands of rows, then columns, and so
    on until neither cuts any more (one box when that gives more than ``_MAX_WINDOWS``)."""
    whole = _tight(mask, (0, mask.shape[0], 0, mask.shape[1]))
    boxes, axis, unchanged = [whole], 0, 0
    while unchanged < 2 and len(boxes) <= _MAX_WINDOWS:
        cut = [piece for box in boxes for piece in _cut(mask, box, axis)]
        unchanged = unchanged + 1 if len(cut) == len(boxes) else 0
        boxes, axis = cut, 1 - axis
    return boxes if len(boxes) <= _MAX_WINDOWS else [whole]


def _grown(box: Box, margin: int, shape: tuple[int, int]) -> Box:
    top, bottom, left, right = box
    return (
        max(top - margin, 0),
        min(bottom + margin, shape[0]),
        max(left - margin, 0),
        min(right + margin, shape[1]),
    )


# every offset at most 3 * sqrt(2) away, in scipy's order of preference between equally near pixels:
# nearer first, then the leftmost column, then the upper row
_OFFSETS = sorted(
    (dy * dy + dx * dx, dx, dy)
    for dy in range(-_REACH, _REACH + 1)
    for dx in range(-_REACH, _REACH + 1)
    if dy * dy + dx * dx <= 2 * _RADIUS * _RADIUS
)
_STEPS = np.array([(dy, dx) for _, dx, dy in _OFFSETS], np.int64)


_LOG_HALF_FIFTH = math.log(0.5) / 5
_importance_by_squared_distance = np.zeros(0)


def _importance_table(size: int) -> np.ndarray:
    """``2 - 0.5 ** (sqrt(s) / 5)`` for every integer ``s`` below ``size`` (at least), as PySODMetrics
    computes it from scipy's float64 distance ``sqrt(s)``, and 0 for ``s = 0`` (a foreground pixel).
    One table per process, grown (doubling) when a larger image needs it."""
    global _importance_by_squared_distance
    if _importance_by_squared_distance.size < size:
        squared = np.arange(max(size, 2 * _importance_by_squared_distance.size), dtype=np.float64)
        table = 2.0 - np.exp(_LOG_HALF_FIFTH * np.sqrt(squared))
        table[0] = 0.0
        _importance_by_squared_distance = table
    return _importance_by_squared_distance


def _importance(mask: np.ndarray) -> np.ndarray:
    """(H * W,) float64: ``2 - 0.5 ** (d / 5)`` for each background pixel, ``d`` its Euclidean distance to
    the foreground exactly as scipy gives it (the square root of the exact integer squared distance);
    0 for the foreground."""
    importance = np.empty(mask.size)
    largest = _kernels.squared_distances(mask.view(np.uint8), *mask.shape, importance)
    if largest < _LARGEST_TABLE:
        _kernels.lookup_inplace(_importance_table(largest + 1), importance)
        return importance
    foreground = importance == 0
    importance = 2.0 - np.exp(_LOG_HALF_FIFTH * np.sqrt(importance, out=importance), out=importance)
    importance[foreground] = 0.0
    return importance


def ground_terms(mask: np.ndarray) -> WeightedFGround | None:
    """The GT-side terms of the weighted F for a bool mask; None when it has no foreground."""
    n_fg = np.count_nonzero(mask)
    if n_fg == 0:
        return None
    h, w = mask.shape
    mask = np.ascontiguousarray(mask)
    # the band: background pixels with a foreground pixel within the radius in both axes
    near = cv2.dilate(mask.view(np.uint8), np.ones((2 * _RADIUS + 1,) * 2, np.uint8))
    boxes = [_grown(box, _RADIUS, (h, w)) for box in _clusters(mask)]
    windows = np.array(
        [(top, left, bottom - top, right - left, 0) for top, bottom, left, right in boxes], np.int64
    )
    sources = np.empty(int((windows[:, 2] * windows[:, 3]).sum()), np.int32)
    window_fg = np.empty(n_fg, np.int32)
    spans = np.empty(2 * int(windows[:, 2].sum()), np.int32)
    _kernels.window_sources(mask.view(np.uint8), near, h, w, windows, _STEPS, sources, window_fg, spans)
    return WeightedFGround(
        n_fg=n_fg,
        windows=windows,
        sources=sources,
        window_fg=window_fg,
        spans=spans,
        importance=_importance(mask),
    )


def weighted_f_many(
    maps: Sequence[np.ndarray],
    values: np.ndarray,
    ground: WeightedFGround | None,
    beta2: float = 1.0,
    empty: float = 0.0,
) -> list[float]:
    """Weighted F-beta of integer level maps of one GT (all uint8 or all uint16); level ``k`` of map ``m``
    has normalised value ``values[m, k]``.

    ``ground`` comes from :func:`ground_terms` of the binary GT; ``empty`` is returned for a GT without
    foreground (PySODMetrics: 0; Matlab cannot score it: NaN). One compiled call reads the GT's
    importance weights once for all the maps; each map gets the value it gets alone.
    """
    if ground is None:
        return [empty] * len(maps)
    if not maps:
        return []
    sums = np.empty((len(maps), 2))
    _kernels.weighted_f_terms(
        [np.ascontiguousarray(levels) for levels in maps],
        maps[0].itemsize,
        np.ascontiguousarray(values, dtype=np.float64),
        ground.importance,
        ground.windows,
        ground.sources,
        ground.window_fg,
        ground.spans,
        _KERNEL,
        sums,
    )
    scores = []
    for fp, fg_sum in sums.tolist():
        tp = ground.n_fg - fg_sum
        recall = 1 - fg_sum / ground.n_fg
        precision = tp / (tp + fp + MATLAB_EPS)
        scores.append((1 + beta2) * recall * precision / (recall + beta2 * precision + MATLAB_EPS))
    return scores


def weighted_f(
    levels: np.ndarray,
    values: np.ndarray,
    ground: WeightedFGround | None,
    beta2: float = 1.0,
    empty: float = 0.0,
) -> float:
    """:func:`weighted_f_many` of one map whose level ``k`` has normalised value ``values[k]``."""
    return weighted_f_many([levels], values[None], ground, beta2, empty)[0]
