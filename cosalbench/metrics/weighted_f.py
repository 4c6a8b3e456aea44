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
  (scipy's feature transform) breaks ties between equally near pixels.
  Every background pixel also gets the importance weight ``2 - 0.5 ** (d / 5)`` (``d`` exact:
  OpenCV's precise distance, squared, rounded to the integer it is and square-rooted in float64
  as scipy does).
* :func:`weighted_f` (once per prediction): one lookup of the map's values over the image gives the
  weighted false positives (a dot product with the importance); the band then takes its nearest
  foreground pixel's value, and the 7x7 Gaussian (sigma 5, normalised like Matlab's ``fspecial``)
  runs as two 1-D passes over each window only, read at the window's foreground pixels. The
  filtered error is ``mass - filter(value)``, where ``mass`` is the kernel's weight inside the
  image (1 away from its borders): PySODMetrics filters ``1 - value`` with zeros outside the image.
  This equals PySODMetrics' 2-D ``convolve`` up to float rounding (parity is tested to 1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from cosalbench.metrics.measures import MATLAB_EPS

_RADIUS = 3  # of the 7x7 filter
# a band pixel is within 3 pixels of the foreground in both axes, so its nearest foreground pixel is
# at most 3 * sqrt(2) < 4 + 1 away: within 4 pixels in either axis
_REACH = 4
# clusters further apart than this (empty rows or columns between them) have disjoint windows
_GAP = 2 * _RADIUS
# more clusters than this (a speckled GT) are scored in one window: per-window overhead would dominate
_MAX_WINDOWS = 16
# below this image diagonal OpenCV's float32 distances give the exact squared distances (see
# _importance); beyond it scipy's float64 distances are used
_FLOAT32_EXACT_DISTANCE = 1500.0

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
    windows: tuple[tuple[slice, slice], ...]  # disjoint: each cluster's bounding box grown by the radius
    window_fg: tuple[np.ndarray, ...]  # flat indices, within each window, of its foreground pixels
    fg: np.ndarray  # flat image indices of the foreground pixels, window by window
    fg_mass: np.ndarray  # the 7x7 kernel's weight inside the image around each of them
    band: np.ndarray  # flat image indices of the background pixels within the radius of the foreground
    band_nearest: np.ndarray  # flat image index of each one's nearest foreground pixel
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


def _kernel_mass(length: int) -> np.ndarray:
    """Weight of the 1-D kernel inside ``[0, length)`` centred on each position."""
    return cv2.filter2D(np.ones((1, length)), cv2.CV_64F, _KERNEL[None, :], borderType=cv2.BORDER_CONSTANT)[0]


# every offset at most 3 * sqrt(2) away, in scipy's order of preference between equally near pixels:
# nearer first, then the leftmost column, then the upper row
_OFFSETS = sorted(
    (dy * dy + dx * dx, dx, dy)
    for dy in range(-_REACH, _REACH + 1)
    for dx in range(-_REACH, _REACH + 1)
    if dy * dy + dx * dx <= 2 * _RADIUS * _RADIUS
)


# most band pixels have a foreground pixel within distance 2: these offsets are tried first, for all of them
_NEAR_FIRST = sum(1 for squared, _, _ in _OFFSETS if squared <= 4)


def _band_nearest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat image indices of the band's pixels and of each one's nearest foreground pixel.

    A band pixel has a foreground pixel within 3 rows and 3 columns, so its nearest one is among the
    offsets of ``_OFFSETS``: the first of them that lands on the foreground is the pixel scipy's
    feature transform picks (its ties go to the leftmost column, then the upper row). The offsets
    within distance 2 are tried first; only the pixels that none of them hits try the farther ones.
    """
    h, w = mask.shape
    near = cv2.dilate(mask.view(np.uint8), np.ones((2 * _RADIUS + 1,) * 2, np.uint8))
    band = np.flatnonzero(near > mask.view(np.uint8))
    padded = np.zeros((h + 2 * _REACH, w + 2 * _REACH), bool)
    padded[_REACH:-_REACH, _REACH:-_REACH] = mask
    row, col = np.divmod(band, w)
    at = (row + _REACH) * padded.shape[1] + col + _REACH
    steps = np.array([dy * padded.shape[1] + dx for _, dx, dy in _OFFSETS])
    flat = padded.reshape(-1)
    hits = np.take(flat, at[:, None] + steps[:_NEAR_FIRST])
    first = hits.argmax(axis=1)
    farther = np.flatnonzero(~hits.any(axis=1))
    far_hits = np.take(flat, at[farther, None] + steps[_NEAR_FIRST:])
    first[farther] = _NEAR_FIRST + far_hits.argmax(axis=1)
    image_steps = np.array([dy * w + dx for _, dx, dy in _OFFSETS])
    return band, band + image_steps[first]


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
    the foreground exactly as scipy gives it; 0 for the foreground."""
    if math.hypot(*mask.shape) >= _FLOAT32_EXACT_DISTANCE:
        importance = 2.0 - np.exp(_LOG_HALF_FIFTH * ndimage.distance_transform_edt(~mask))
        importance[mask] = 0.0
        return importance.ravel()
    # OpenCV's float32 distance is sqrt(s), s the exact integer squared distance, rounded once; squared
    # again in float32 it is within 0.5 of s (relative error under 2e-7, s under 2.25e6), so rounding
    # gives s back
    distance = cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    np.multiply(distance, distance, out=distance)
    squared = np.rint(distance, out=distance).astype(np.intp).reshape(-1)
    return np.take(_importance_table(int(squared.max()) + 1), squared)


def ground_terms(mask: np.ndarray) -> WeightedFGround | None:
    """The GT-side terms of the weighted F for a bool mask; None when it has no foreground."""
    if not mask.any():
        return None
    h, w = mask.shape
    boxes = [_grown(box, _RADIUS, (h, w)) for box in _clusters(mask)]
    windows = tuple((slice(top, bottom), slice(left, right)) for top, bottom, left, right in boxes)
    window_fg = tuple(np.flatnonzero(mask[window]) for window in windows)
    fg = np.concatenate(
        [
            (own // (box[3] - box[2]) + box[0]) * w + own % (box[3] - box[2]) + box[2]
            for own, box in zip(window_fg, boxes, strict=True)
        ]
    )
    row_mass, col_mass = _kernel_mass(h), _kernel_mass(w)
    band, band_nearest = _band_nearest(mask)
    return WeightedFGround(
        n_fg=int(fg.size),
        windows=windows,
        window_fg=window_fg,
        fg=fg,
        fg_mass=row_mass[fg // w] * col_mass[fg % w],
        band=band,
        band_nearest=band_nearest,
        importance=_importance(mask),
    )


def _values_image(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``values[levels]`` as a new contiguous float64 image (OpenCV's LUT for 8-bit maps: several times
    faster than NumPy's indexing)."""
    if levels.dtype == np.uint8 and values.size == 256:
        return cv2.LUT(levels, values)
    return np.ascontiguousarray(values[levels], dtype=np.float64)


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
    image = _values_image(values, levels)
    flat = image.reshape(-1)
    fp = float(np.dot(flat, ground.importance))  # a background pixel's error is its value
    # near the foreground, the background's error is that of its nearest foreground pixel
    flat[ground.band] = flat[ground.band_nearest]
    blurred = np.concatenate(
        [
            np.take(
                cv2.sepFilter2D(image[window], cv2.CV_64F, _KERNEL, _KERNEL, borderType=cv2.BORDER_CONSTANT),
                own,
            )
            for window, own in zip(ground.windows, ground.window_fg, strict=True)
        ]
    )
    filtered_error = np.subtract(ground.fg_mass, blurred, out=blurred)
    fg_error = np.subtract(1.0, np.take(flat, ground.fg))
    fg_sum = float(np.minimum(filtered_error, fg_error, out=fg_error).sum())
    tp = ground.n_fg - fg_sum
    recall = 1 - fg_sum / ground.n_fg
    precision = tp / (tp + fp + MATLAB_EPS)
    return float((1 + beta2) * recall * precision / (recall + beta2 * precision + MATLAB_EPS))
