"""Weighted F-measure (Margolin et al., CVPR 2014) as in Fan's ``original_WFb.m`` and PySODMetrics.

This is the one measure that needs the full image (a distance transform and a 7x7 Gaussian filter),
so it is optional. It is split in two so that many predictions of one GT share the expensive part:

* :func:`ground_terms` (once per GT): the nearest foreground pixel of every pixel near the foreground
  (scipy's feature transform, so ties between equally near pixels are broken exactly as
  PySODMetrics' ``distance_transform_edt`` breaks them), and the importance weight
  ``2 - 0.5 ** (d / 5)`` of every background pixel (``d`` exact: OpenCV's precise distance, squared,
  rounded to the integer it is and square-rooted in float64 as scipy does).
* :func:`weighted_f` (once per prediction): only the foreground pixels' filtered errors enter the
  result, so the 7x7 Gaussian (sigma 5, normalised like Matlab's ``fspecial``) runs as two 1-D
  passes over the foreground's bounding box grown by the 3-pixel filter radius, not the image;
  pixels further away cannot change any foreground value. The separable filter equals PySODMetrics'
  2-D ``convolve`` up to float rounding (parity is tested to 1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from cosalbench.metrics.measures import MATLAB_EPS

_RADIUS = 3  # of the 7x7 filter
# OpenCV's float32 distance d gives the exact integer d**2 while its error stays under 0.5, i.e. far
# below this distance; beyond it scipy's float64 distances are used
_FLOAT32_EXACT_DISTANCE = 1500.0


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
    window: tuple[slice, slice]  # the foreground's bounding box grown by the filter radius
    nearest: np.ndarray  # (window) flat image index of each window pixel's nearest foreground pixel
    fg_in_window: np.ndarray  # flat window indices of the foreground pixels
    importance: np.ndarray  # (H * W,) float64: 2 - 0.5 ** (d / 5) on background, 0 on foreground


def _background_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest foreground pixel, float64, as scipy computes it."""
    if math.hypot(*mask.shape) >= _FLOAT32_EXACT_DISTANCE:
        return ndimage.distance_transform_edt(~mask)
    near = cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    squared = near.astype(np.float64)
    np.multiply(squared, squared, out=squared)
    np.rint(squared, out=squared)
    return np.sqrt(squared, out=squared)


def ground_terms(mask: np.ndarray) -> WeightedFGround | None:
    """The GT-side terms of the weighted F for a bool mask; None when it has no foreground."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    top, bottom = max(int(rows[0]) - _RADIUS, 0), min(int(rows[-1]) + _RADIUS + 1, h)
    left, right = max(int(cols[0]) - _RADIUS, 0), min(int(cols[-1]) + _RADIUS + 1, w)
    window = (slice(top, bottom), slice(left, right))
    inside = mask[window]
    # every foreground pixel lies in the window, so its feature transform picks the same pixels
    near_row, near_col = ndimage.distance_transform_edt(~inside, return_distances=False, return_indices=True)
    nearest = near_row.astype(np.intp)
    nearest += top
    nearest *= w
    nearest += near_col
    nearest += left
    importance = _background_distance(mask)  # becomes 2 - exp(log(0.5) / 5 * d), in place
    importance *= math.log(0.5) / 5
    cv2.exp(importance, dst=importance)
    np.subtract(2.0, importance, out=importance)
    importance[mask] = 0.0
    return WeightedFGround(
        n_fg=int(np.count_nonzero(mask)),
        window=window,
        nearest=nearest,
        fg_in_window=np.flatnonzero(inside),
        importance=importance.ravel(),
    )


def lookup(table: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``table[levels]`` (float64), through OpenCV's LUT for 8-bit levels (several times faster)."""
    if levels.dtype == np.uint8 and table.size == 256:
        return cv2.LUT(levels, table)
    return table[levels]


def weighted_f(
    levels: np.ndarray,
    values: np.ndarray,
    ground: WeightedFGround | None,
    beta2: float = 1.0,
    empty: float = 0.0,
) -> float:
    """Weighted F-beta of an integer level map whose level ``k`` has normalised value ``values[k]``.

    ``ground`` comes from :func:`ground_terms` of the binary GT; ``empty`` is returned for a GT
    without foreground (PySODMetrics: 0; Matlab cannot score it: NaN).
    """
    if ground is None:
        return empty
    flat = levels.ravel()
    # error of each window pixel's nearest foreground pixel (on foreground pixels: their own error)
    spread = lookup(1.0 - values, np.take(flat, ground.nearest))
    blurred = cv2.sepFilter2D(spread, cv2.CV_64F, _KERNEL, _KERNEL, borderType=cv2.BORDER_CONSTANT)
    fg_error = np.take(spread, ground.fg_in_window)
    fg_weighted = np.minimum(np.take(blurred, ground.fg_in_window), fg_error)
    fg_sum = float(fg_weighted.sum())
    fp = float(
        np.dot(lookup(values, levels).ravel(), ground.importance)
    )  # background error is the value itself
    tp = ground.n_fg - fg_sum
    recall = 1 - fg_sum / ground.n_fg
    precision = tp / (tp + fp + MATLAB_EPS)
    return float((1 + beta2) * recall * precision / (recall + beta2 * precision + MATLAB_EPS))
