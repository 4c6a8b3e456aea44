"""Weighted F: exact parity with PySODMetrics 1.6.2 (its tie-breaking included) and GT-side reuse."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import py_sod_metrics as psm
import pytest
from scipy import ndimage

from cosalbench.metrics.protocols import get_protocol
from cosalbench.metrics.weighted_f import ground_terms, weighted_f

TOL = 1e-9
PROTOCOL = get_protocol("pysodmetrics")


def _reference(pred: np.ndarray, gt: np.ndarray) -> float:
    metric = psm.WeightedFmeasure()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.step(pred, gt)
    return float(metric.get_results()["wfm"])


def _tie_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse foreground on a lattice: many background pixels are equally near two foreground pixels."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((40, 52), np.uint8)
    gt[3::6, 5::8] = 255
    gt[20:23, 30:34] = 255
    pred = rng.integers(0, 256, gt.shape).astype(np.uint8)
    return pred, gt


@pytest.mark.parametrize("seed", range(4))
def test_ties_broken_as_pysodmetrics(seed: int) -> None:
    pred, gt = _tie_case(seed)
    reference = _reference(pred, gt)
    # the same image mirrored breaks the ties the other way round: the value really depends on them
    mirrored = _reference(pred[::-1, ::-1].copy(), gt[::-1, ::-1].copy())
    assert abs(mirrored - reference) > 1e-6
    assert PROTOCOL.score(pred, gt, wfm=True).scalars["wfm"] == pytest.approx(reference, abs=TOL)


def _blob_pair(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros(shape, np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(1, shape[1] // 2 + 2)), int(rng.integers(1, shape[0] // 2 + 2)))
        cv2.ellipse(gt, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    noise = rng.uniform(-60, 60, shape)
    pred = np.clip(cv2.GaussianBlur(gt.astype(np.float64), (0, 0), 3) + noise, 10, 230).astype(np.uint8)
    return pred, gt


def test_foreground_touching_every_border_and_random_blobs() -> None:
    rng = np.random.default_rng(3)
    cases = [_blob_pair(rng, (int(rng.integers(2, 90)), int(rng.integers(2, 90)))) for _ in range(40)]
    full = np.full((9, 7), 255, np.uint8)
    cases += [(rng.integers(0, 256, full.shape).astype(np.uint8), full)]
    border = np.zeros((8, 8), np.uint8)
    border[0, :] = border[:, -1] = 255
    cases += [(rng.integers(0, 256, border.shape).astype(np.uint8), border)]
    for pred, gt in cases:
        assert PROTOCOL.score(pred, gt, wfm=True).scalars["wfm"] == pytest.approx(
            _reference(pred, gt), abs=TOL
        )


def test_one_ground_scores_many_predictions() -> None:
    """The GT-side terms computed once give each prediction the value it gets alone."""
    rng = np.random.default_rng(11)
    pred, gt = _blob_pair(rng, (60, 80))
    ground = ground_terms(gt > 128)
    values = np.arange(256) / 255
    for _ in range(5):
        other = rng.integers(0, 256, gt.shape).astype(np.uint8)
        other[0, 0], other[0, 1] = 0, 255  # full range: the normalised values are level / 255
        assert weighted_f(other, values, ground) == pytest.approx(_reference(other, gt), abs=TOL)
    assert ground_terms(np.zeros((4, 4), bool)) is None
    assert weighted_f(pred, values, None, empty=float("nan")) != weighted_f(pred, values, None)


def _masks(seed: int) -> list[np.ndarray]:
    """Masks whose band pixels have ties, clusters, image borders and speckle (more than 16 clusters)."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(12):
        h, w = int(rng.integers(3, 70)), int(rng.integers(3, 70))
        masks.append(rng.random((h, w)) < rng.uniform(0.005, 0.3))
        lattice = np.zeros((h, w), bool)
        lattice[
            int(rng.integers(0, 3)) :: int(rng.integers(3, 9)),
            int(rng.integers(0, 3)) :: int(rng.integers(3, 12)),
        ] = True
        masks.append(lattice)
        blobs = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.ellipse(
                blobs,
                centre,
                (int(rng.integers(1, w // 3 + 2)), int(rng.integers(1, h // 3 + 2))),
                0,
                0,
                360,
                1,
                -1,
            )
        masks.append(blobs > 0)
    return [mask for mask in masks if mask.any()]


def _window_images(ground, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How many windows hold each pixel, the source each window pixel carries (-2: no window) and the
    pixels the windows list as foreground."""
    cover, source, listed = np.zeros(shape, int), np.full(shape, -2), np.zeros(shape, bool)
    start, fg_start = 0, 0
    for top, left, height, width, n_fg in ground.windows.tolist():
        window = (slice(top, top + height), slice(left, left + width))
        cover[window] += 1
        source[window] = ground.sources[start : start + height * width].reshape(height, width)
        own = ground.window_fg[fg_start : fg_start + n_fg]
        listed[window][np.unravel_index(own, (height, width))] = True
        start, fg_start = start + height * width, fg_start + n_fg
    assert start == ground.sources.size and fg_start == ground.window_fg.size
    return cover, source, listed


def _spans_by_numpy(mask: np.ndarray, ground) -> np.ndarray:
    """Per window row, the columns [lo, hi) of the window's foreground within 3 rows (0, 0 when none)."""
    spans = []
    for top, left, height, width, _ in ground.windows.tolist():
        fg = mask[top : top + height, left : left + width]
        for y in range(height):
            columns = np.flatnonzero(fg[max(y - 3, 0) : y + 4].any(axis=0))
            spans += [int(columns[0]), int(columns[-1]) + 1] if columns.size else [0, 0]
    return np.array(spans)


@pytest.mark.parametrize("seed", range(3))
def test_band_nearest_pixels_are_scipys_feature_transform(seed: int) -> None:
    """Only background pixels within the filter's reach get a nearest foreground pixel, and it is the one
    PySODMetrics' whole-image ``distance_transform_edt`` picks, ties included; the windows carry it."""
    for mask in _masks(seed):
        rows, cols = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
        reach = cv2.dilate(mask.view(np.uint8), np.ones((7, 7), np.uint8)) > 0
        _, source, _ = _window_images(ground_terms(mask), mask.shape)
        # the foreground carries itself: scipy's feature transform of a foreground pixel
        assert np.array_equal(source[reach], (rows * mask.shape[1] + cols)[reach])
        assert (source[~reach] < 0).all()


def test_windows_are_disjoint_and_cover_each_foreground_pixel_with_its_reach() -> None:
    for mask in _masks(7):
        ground = ground_terms(mask)
        cover, _, listed = _window_images(ground, mask.shape)
        assert cover.max() == 1
        reach = cv2.dilate(mask.view(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert (cover[reach] == 1).all()
        assert np.array_equal(listed, mask)
        assert ground.n_fg == mask.sum()
        assert np.array_equal(ground.spans, _spans_by_numpy(mask, ground))
    two = np.zeros((40, 60), bool)
    two[5:10, 5:10] = two[25:30, 40:50] = True
    assert len(ground_terms(two).windows) == 2
    speckle = np.zeros((90, 90), bool)
    speckle[::9, ::9] = True  # 100 clusters: scored in one window
    assert len(ground_terms(speckle).windows) == 1


@pytest.mark.parametrize("shape", [(37, 52), (1000, 1100)])
def test_importance_is_pysodmetrics_weight_of_scipys_distance(shape: tuple[int, int]) -> None:
    """``2 - 0.5 ** (d / 5)`` on the background as PySODMetrics computes it, 0 on the foreground; the
    second shape's diagonal (1487) is near the largest squared distance OpenCV's float32 gives exactly."""
    mask = np.zeros(shape, bool)
    mask[0, 0] = mask[shape[0] // 3, shape[1] // 5] = True
    distance = ndimage.distance_transform_edt(~mask)
    expected = np.where(mask, 0.0, 2 - np.exp(np.log(0.5) / 5 * distance)).ravel()
    np.testing.assert_allclose(ground_terms(mask).importance, expected, rtol=0, atol=1e-15)
