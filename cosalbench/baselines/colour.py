"""CIE Lab as the CBCS Matlab release computes it (Getreuer's ``colorspace`` routine), rounded.

The constants are those of the bundled converter, not scikit-image's: the two disagree in the
second decimal for saturated colours, which flips rounded values and changes the clustering.
"""

from __future__ import annotations

import numpy as np

# sRGB linear -> XYZ: the inverse of the XYZ -> sRGB matrix the Matlab routine inverts at run time.
_XYZ_TO_RGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]], dtype=np.float64
)
RGB_TO_XYZ = np.linalg.inv(_XYZ_TO_RGB)
WHITE_POINT = np.array([0.950456, 1.0, 1.088754])
_GAMMA_KNEE = 0.0404482362771076
_F_KNEE = 0.008856


def matlab_round(values: np.ndarray) -> np.ndarray:
    """Matlab's ``round``: halves go away from zero (numpy's ``round`` goes to even)."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def _linear_lut() -> np.ndarray:
    """Inverse sRGB gamma of every 8-bit level (the same formula the routine applies per pixel)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.where(v <= _GAMMA_KNEE, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_LINEAR = _linear_lut()


def _f(t: np.ndarray) -> np.ndarray:
    """The Lab companding function: cube root above the knee, linear below."""
    return np.where(t >= _F_KNEE, np.power(np.maximum(t, 0.0), 1.0 / 3.0), t * (841.0 / 108.0) + 4.0 / 29.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Unrounded CIE Lab (float64, ``(..., 3)``) of 8-bit RGB pixels ``(..., 3)``."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB pixels (..., 3), got {rgb.dtype} {rgb.shape}")
    xyz = _LINEAR[rgb] @ RGB_TO_XYZ.T / WHITE_POINT
    fx, fy, fz = (_f(xyz[..., i]) for i in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def rounded_lab(rgb: np.ndarray) -> np.ndarray:
    """CBCS's colour feature: Lab of 8-bit RGB with each channel rounded to an integer (float64)."""
    return matlab_round(rgb_to_lab(rgb))
