"""CBCS building blocks against hand-computed values (spec cbcs-spec.md section 9, tests 1-7)."""

from __future__ import annotations

import numpy as np
import pytest

from cosalbench.baselines import cbcs
from cosalbench.baselines.colour import matlab_round, rgb_to_lab, rounded_lab
from cosalbench.baselines.kmeans import distinct_rows, kmeans_pp
from cosalbench.imresize import imresize


class Draws:
    """An injected uniform stream that records how many values were used."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)
        self.used = 0

    def __call__(self) -> float:
        value = self.values[self.used]
        self.used += 1
        return value


# --------------------------------------------------------------------------- 1. G


def test_gauss_normal_values_and_invariance() -> None:
    np.testing.assert_allclose(cbcs.gauss_normal([1.0, 2.0, 3.0]), np.exp([-2.0, -0.5, 0.0]), rtol=1e-12)
    values = np.array([0.3, -1.0, 4.0, 2.5])
    np.testing.assert_allclose(cbcs.gauss_normal(7.0 * values + 3.0), cbcs.gauss_normal(values), rtol=1e-12)
    np.testing.assert_array_equal(cbcs.gauss_normal([2.0, 2.0, 2.0]), [1.0, 1.0, 1.0])
    with_nan = cbcs.gauss_normal([1.0, np.nan, 3.0])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], [np.exp(-2.0), 1.0])


# --------------------------------------------------------------------------- 2. Lab


@pytest.mark.parametrize(
    ("rgb", "lab", "rounded"),
    [
        ((255, 255, 255), (99.9983, 0.0099, -0.0166), (100, 0, 0)),
        ((255, 0, 0), (53.2314, 80.1163, 67.2188), (53, 80, 67)),
        ((0, 255, 0), (87.7356, -86.1823, 83.1808), (88, -86, 83)),
        ((0, 0, 255), (32.3027, 79.1937, -107.8677), (32, 79, -108)),
        ((200, 150, 100), (65.7568, 12.7671, 33.5544), (66, 13, 34)),
    ],
)
def test_lab_oracle(rgb: tuple, lab: tuple, rounded: tuple) -> None:
    pixel = np.array([rgb], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_lab(pixel)[0], lab, atol=1e-4)
    np.testing.assert_array_equal(rounded_lab(pixel)[0], rounded)


def test_lab_grey_and_matlab_rounding() -> None:
    assert rgb_to_lab(np.array([[128, 128, 128]], np.uint8))[0, 0] == pytest.approx(53.584, abs=1e-3)
    assert rounded_lab(np.array([[128, 128, 128]], np.uint8))[0, 0] == 54
    np.testing.assert_array_equal(matlab_round([0.5, 1.5, 2.5, -0.5, -2.5, 2.4]), [1, 2, 3, -1, -3, 2])


# --------------------------------------------------------------------------- 3. Matlab imresize


def test_imresize_ramp_oracle() -> None:
    ramp = (7 * np.arange(35).reshape(5, 7)).astype(np.uint8)
    expected = [[16, 29, 41, 54], [100, 113, 125, 138], [184, 197, 209, 222]]
    np.testing.assert_array_equal(imresize(ramp, (3, 4)), expected)


def test_imresize_pass_order_follows_smaller_scale() -> None:
    image = np.random.default_rng(3).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    # rows shrink 37 -> 11 (0.30), columns 53 -> 31 (0.58): rows go first
    rows_first = imresize(imresize(image, (11, 53)), (11, 31))
    cols_first = imresize(imresize(image, (37, 31)), (11, 31))
    np.testing.assert_array_equal(imresize(image, (11, 31)), rows_first)
    assert not np.array_equal(rows_first, cols_first)


def test_imresize_float_keeps_constant_and_identity() -> None:
    flat = np.full((200, 200), 0.25)
    np.testing.assert_allclose(imresize(flat, (37, 512)), 0.25, rtol=1e-12)
    image = np.random.default_rng(0).integers(0, 256, (9, 8)).astype(np.uint8)
    np.testing.assert_array_equal(imresize(image, (9, 8)), image)


# --------------------------------------------------------------------------- 4. k-means++


def test_kmeans_seeding_is_distance_proportional() -> None:
    points = np.array([[0.0], [1.0], [10.0]])
    # after centre 0 the cumulative distances are 0, 1, 11: u = 0.05 < 1/11 picks point 1 (D^2 would pick 10)
    result = kmeans_pp(points, 3, Draws([0.0, 0.05, 0.5]))
    np.testing.assert_array_equal(result.labels, [0, 1, 2])


def test_kmeans_restart_and_ties_hand_computed() -> None:
    points = np.array([[3, 8], [3, 3], [4, 9], [3, 2], [8, 4]], dtype=float)
    draws = Draws([0.4, 0.8, 0.0, 0.6, 0.4, 0.2, 0.9])
    # attempt 1 seeds (4,9), (8,4), (3,8); the first Lloyd step ties (3,3) between centres 1 and 2,
    # the lower index wins, cluster 2 empties and the run restarts on the same stream;
    # attempt 2 seeds (4,9), (3,2), (3,3) and converges to {0,2}, {1,3}, {4}
    result = kmeans_pp(points, 3, draws)
    assert draws.used == 6
    np.testing.assert_array_equal(result.labels, [0, 1, 0, 1, 2])
    np.testing.assert_allclose(result.centres, [[3.5, 8.5], [3.0, 2.5], [8.0, 4.0]])


def test_kmeans_caps_k_at_distinct_points() -> None:
    points = np.array([[1.0, 2.0]] * 4 + [[5.0, 5.0]] * 3)
    draws = Draws([0.1, 0.7, 0.3])
    result = kmeans_pp(points, 6, draws)
    assert draws.used == 2
    assert len(result.centres) == 2
    assert len(np.unique(result.labels[:4])) == 1 and result.labels[0] != result.labels[-1]


def test_distinct_rows_matches_numpy_unique() -> None:
    rng = np.random.default_rng(5)
    for points in (
        rng.integers(-40, 60, (5000, 3)).astype(float),
        rng.integers(0, 3, (20000, 3)).astype(float),  # dense-table path
        rng.normal(size=(40, 3)),  # non-integer path
    ):
        distinct, inverse, counts = distinct_rows(points)
        want, want_inverse, want_counts = np.unique(points, axis=0, return_inverse=True, return_counts=True)
        np.testing.assert_array_equal(distinct, want)
        np.testing.assert_array_equal(inverse, want_inverse.reshape(-1))
        np.testing.assert_array_equal(counts, want_counts)


# --------------------------------------------------------------------------- 5-6. cues


def test_correspondence_cue_extremes() -> None:
    n = 4
    spread = np.repeat(np.arange(n), 5)  # cluster 0 spread evenly over 4 images
    labels = np.concatenate([np.zeros(20, int), np.ones(7, int)])
    images = np.concatenate([spread, np.full(7, 2)])  # cluster 1 only in image 2
    cue = cbcs.correspondence_cue(labels, images, 2, n)
    np.testing.assert_allclose(cue, [1 / n, (1 / n) / (1 + 1 / np.sqrt(n))])


def test_spatial_and_contrast_cues() -> None:
    labels = np.array([0, 0, 1, 1])
    distances = np.array([0.0, 0.0, 100.0, 300.0])
    np.testing.assert_allclose(cbcs.spatial_cue(labels, distances, 2, 200.0), [1.0, np.exp(-0.5)])
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    np.testing.assert_allclose(cbcs.contrast_cue(centres, np.array([1.0, 3.0])), [3.75, 1.25])


def test_centre_distances_use_the_release_centre() -> None:
    d = cbcs.centre_distances(200)
    assert d[99, 99] == 0  # 1-based (100, 100)
    assert d[0, 0] == 140  # round(sqrt(99^2 + 99^2)) = round(140.007)
    assert d[199, 199] == 141  # round(sqrt(2) * 100)


# --------------------------------------------------------------------------- 7. smoothing


def test_smoothing_border_attenuation() -> None:
    smoothed = cbcs.smooth(np.ones((6, 6)))
    assert smoothed[0, 0] == pytest.approx(0.4528, abs=1e-4)
    assert smoothed[0, 3] == pytest.approx(0.6729, abs=1e-4)
    assert smoothed[3, 3] == pytest.approx(1.0)


def test_mosaic_bleeds_between_neighbours_only() -> None:
    left, right = cbcs.smooth_mosaic([np.ones((5, 5)), np.zeros((5, 5))])
    ones = cbcs.smooth_mosaic([np.ones((5, 5)), np.ones((5, 5))])
    assert left[2, 0] == pytest.approx(0.6729, abs=1e-4)  # outer border: zero padding
    assert left[2, 4] == pytest.approx(0.6729, abs=1e-4)  # next to a zero map
    assert ones[0][2, 4] == pytest.approx(1.0) and ones[1][2, 0] == pytest.approx(1.0)  # no seam
    assert right[2, 0] == pytest.approx(1 - 0.6729, abs=1e-4) and right[2, 1] == 0.0


def _reference_kmeans(points: np.ndarray, k: int, draws: list[float]) -> np.ndarray:
    """Textbook transcription of the release's k-means++ on every point: no dedup, no pruning."""
    stream = iter(draws)
    previous = None
    while True:
        centres = points[[int(np.floor(next(stream) * (len(points) - 1) + 0.5))]]
        labels = np.zeros(len(points), int)
        for _ in range(1, k):
            cumulative = np.cumsum(np.linalg.norm(points - centres[labels], axis=1))
            chosen = np.flatnonzero(next(stream) < cumulative / cumulative[-1])[0]
            centres = np.vstack([centres, points[chosen]])
            labels = np.argmax(2 * points @ centres.T - (centres**2).sum(axis=1), axis=1)
        while previous is None or not np.array_equal(labels, previous):
            previous = labels
            with np.errstate(invalid="ignore"):
                centres = np.stack([points[labels == j].mean(axis=0) for j in range(k)])
            score = 2 * points @ centres.T - (centres**2).sum(axis=1)
            labels = np.argmax(np.where(np.isnan(score), -np.inf, score), axis=1)
        if len(np.unique(labels)) == k:
            return labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_kmeans_equals_reference_transcription(seed: int) -> None:
    rng = np.random.default_rng(seed)
    blobs = rng.integers(-60, 60, (6, 3))
    points = (blobs[rng.integers(0, 6, 4000)] + rng.normal(0, 9, (4000, 3))).round()
    draws = list(np.random.RandomState(seed).random_sample(200))
    result = kmeans_pp(points, 9, Draws(draws))
    np.testing.assert_array_equal(result.labels, _reference_kmeans(points, 9, draws))
