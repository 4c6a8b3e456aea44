"""Weighted F-measure (Margolin et al., CVPR 2014) as in Fan's ``original_WFb.m`` and PySODMetrics.

This is the one measure that needs the full image (a distance transform and a 7x7 Gaussian filter),
so it is optional. The 7x7 Gaussian (sigma 5, normalised like Matlab's ``fspecial``) is applied as two
1-D passes with zero padding, which equals the 2-D filter up to float rounding (parity with
PySODMetrics' 2-D ``convolve`` is tested to 1e-9).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from cosalbench.metrics.measures import MATLAB_EPS


def _gaussian_1d(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """The normalised 1-D factor of ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2
    x = np.arange(-half, half + 1)
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


_KERNEL = _gaussian_1d()


def weighted_f_measure(pred: np.ndarray, gt: np.ndarray, beta2: float = 1.0, empty: float = 0.0) -> float:
    """Weighted F-beta of a normalised float map ``pred`` against a bool mask ``gt``.

    ``empty`` is returned for a GT without foreground (PySODMetrics: 0; Matlab cannot score it: NaN).
    """
    if not gt.any():
        return empty
    background = ~gt
    dist, (near_row, near_col) = ndimage.distance_transform_edt(background, return_indices=True)
    error = np.abs(pred - gt)
    spread = error[near_row, near_col]  # on fg pixels the nearest fg pixel is the pixel itself
    blurred = ndimage.correlate1d(spread, _KERNEL, axis=0, mode="constant", cval=0.0)
    blurred = ndimage.correlate1d(blurred, _KERNEL, axis=1, mode="constant", cval=0.0)
    min_error = np.where(gt & (blurred < error), blurred, error)
    importance = np.where(background, 2 - np.exp(math.log(0.5) / 5 * dist), 1.0)
    weighted = min_error * importance
    fg_weighted = weighted[gt]
    tp = np.count_nonzero(gt) - fg_weighted.sum()
    fp = weighted[background].sum()
    recall = 1 - fg_weighted.mean()
    precision = tp / (tp + fp + MATLAB_EPS)
    return float((1 + beta2) * recall * precision / (recall + beta2 * precision + MATLAB_EPS))
