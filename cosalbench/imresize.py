"""Matlab's ``imresize(image, [height width])`` with its default bicubic kernel, as one emulation.

Used by the ``cosal-matlab`` protocol (predictions of another size than the GT) and by the CBCS
baseline. Follows Matlab's ``imresize.m``/``imresizemex`` step by step:

* per output sample, the Keys cubic (a = -0.5) taps, widened by ``1 / scale`` when shrinking
  (antialiasing), normalised by their sum **taken tap by tap in order** as Matlab sums a short row
  (numpy's ``sum`` adds in a pairwise tree from 8 taps on, which moves some weights by an ulp and, at
  exact .5 ties, flips the rounded output by one grey level);
* source indices outside the image mirrored (``[1:n, n:-1:1]``), taps with zero weight dropped;
* the dimension with the smaller scale factor resized first (rows on a tie), each pass summing its
  taps in order and, for integer images, rounding half away from zero and saturating to the class.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (Matlab's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def _sequential_sum(weights: np.ndarray) -> np.ndarray:
    """Row sums added left to right (Matlab's order), not numpy's pairwise tree."""
    total = weights[:, 0].copy()
    for tap in range(1, weights.shape[1]):
        total += weights[:, tap]
    return total


def contributions(in_length: int, out_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Tap weights and 0-based source indices, both ``(out_length, taps)``, of one resize pass."""
    scale = out_length / in_length
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    indices = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if scale < 1 else _cubic(distance)
    weights /= _sequential_sum(weights)[:, None]
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis(image: np.ndarray, out_length: int, axis: int) -> np.ndarray:
    """One pass along ``axis``: taps summed in order; integer images rounded half up and saturated."""
    weights, indices = contributions(image.shape[axis], out_length)
    source = np.moveaxis(image, axis, 0).astype(np.float64)
    shape = (out_length,) + (1,) * (source.ndim - 1)
    out = np.zeros((out_length, *source.shape[1:]))
    for tap in range(weights.shape[1]):  # one tap at a time keeps memory at one output-sized array
        out += weights[:, tap].reshape(shape) * source[indices[:, tap]]
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.floor(out + 0.5), info.min, info.max).astype(image.dtype)
    return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Matlab ``imresize(image, shape)`` (bicubic, antialiased when shrinking) of a 2-D or H x W x C image.

    Integer images come back in their own class (each pass rounded), float images as float64.
    """
    scales = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    out = image
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        if out.shape[axis] != shape[axis]:
            out = _resize_axis(out, shape[axis], axis)
    return out if np.issubdtype(out.dtype, np.integer) else out.astype(np.float64)
