"""The one Matlab ``imresize`` emulation: sequential weight sums decide exact .5 ties as Matlab does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosalbench import imresize as module
from cosalbench.imresize import imresize


def _keys(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _literal_row(row: list[int], out_length: int) -> list[int]:
    """imresize.m's contributions + imresizemex for one uint8 row, written out with Python floats."""
    n = len(row)
    scale = out_length / n
    width = 4.0 / scale if scale < 1 else 4.0
    out = []
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + j for j in range(int(math.ceil(width)) + 2)]
        weights = [scale * _keys(scale * (u - t)) if scale < 1 else _keys(u - t) for t in taps]
        total = 0.0
        for weight in weights:  # Matlab's sum(weights, 2): in order
            total += weight
        value = 0.0
        for t, weight in zip(taps, weights, strict=True):
            if weight != 0:
                mirrored = (t - 1) % (2 * n)
                source = mirrored if mirrored < n else 2 * n - 1 - mirrored
                value += (weight / total) * row[source]
        out.append(min(255, max(0, math.floor(value + 0.5))))
    return out


# (input length, output length, first 255 pixel): a step shrunk so that output samples sit exactly on
# the edge, where the exact value is 127.5 and an ulp in the normalised weights decides the grey level
TIES = [(18, 5, 9), (20, 3, 10), (24, 7, 12), (30, 4, 16), (36, 10, 9), (40, 6, 10), (42, 17, 21)]


def _step(n: int, edge: int) -> np.ndarray:
    row = np.zeros((1, n), np.uint8)
    row[0, edge:] = 255
    return row


@pytest.mark.parametrize(("n", "out", "edge"), TIES)
def test_ties_match_the_literal_matlab_algorithm(n: int, out: int, edge: int) -> None:
    row = _step(n, edge)
    assert imresize(row, (1, out))[0].tolist() == _literal_row(row[0].tolist(), out)
    # the same along columns (the pass order does not matter for a single row/column)
    assert imresize(row.T.copy(), (out, 1))[:, 0].tolist() == _literal_row(row[0].tolist(), out)


def test_pairwise_weight_sums_would_round_the_ties_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's pairwise ``sum`` changes at least one grey level on each tie case: the cases are sharp."""
    expected = {case: imresize(_step(case[0], case[2]), (1, case[1])) for case in TIES}
    monkeypatch.setattr(module, "_sequential_sum", lambda weights: weights.sum(axis=1))
    for (n, out, edge), sequential in expected.items():
        pairwise = imresize(_step(n, edge), (1, out))
        assert np.abs(pairwise.astype(int) - sequential).max() == 1


def test_random_images_match_the_literal_algorithm_row_by_row() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, out = int(rng.integers(2, 60)), int(rng.integers(1, 60))
        row = rng.integers(0, 256, (1, n)).astype(np.uint8)
        assert imresize(row, (1, out))[0].tolist() == _literal_row(row[0].tolist(), out)


def test_integer_classes_and_float_and_colour() -> None:
    deep = np.array([[0, 65535, 0, 65535]], np.uint16)
    assert imresize(deep, (1, 8)).dtype == np.uint16
    flat = np.full((5, 7), 0.25)
    np.testing.assert_allclose(imresize(flat, (13, 3)), 0.25, rtol=1e-12)
    colour = np.random.default_rng(1).integers(0, 256, (9, 11, 3)).astype(np.uint8)
    resized = imresize(colour, (4, 5))
    assert resized.shape == (4, 5, 3) and resized.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(resized[..., channel], imresize(colour[..., channel].copy(), (4, 5)))
