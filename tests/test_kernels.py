"""The compiled per-pixel loops (``cosalbench.metrics._kernels``) against NumPy/SciPy, and their refusals."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import py_sod_metrics as psm
import pytest
from scipy import ndimage

from cosalbench.metrics import _kernels
from cosalbench.metrics import weighted_f as wf
from cosalbench.metrics.histogram import count_levels
from cosalbench.metrics.protocols import get_protocol


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    masks = [
        np.ones((1, 1), bool),
        np.ones((3, 5), bool),
        np.eye(1, 9, 8, dtype=bool),
        np.eye(7, 1, 0, dtype=bool),
    ]
    for _ in range(30):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        mask = rng.random((h, w)) < rng.choice([0.002, 0.05, 0.5, 0.95])
        mask[int(rng.integers(0, h)), int(rng.integers(0, w))] = True
        masks.append(mask)
    tall = np.zeros((400, 3), bool)
    tall[0, 0] = True  # a squared distance of 399**2 + 2**2 in the far corner
    return [*masks, tall]


def test_squared_distances_are_scipys_exactly() -> None:
    for mask in _masks():
        out = np.empty(mask.size)
        largest = _kernels.squared_distances(mask.view(np.uint8), *mask.shape, out)
        expected = np.rint(ndimage.distance_transform_edt(~mask) ** 2).ravel()
        assert np.array_equal(out, expected), mask.shape
        assert largest == expected.max()


def test_squared_distances_refuse_an_empty_mask_and_wrong_sizes() -> None:
    out = np.empty(12)
    with pytest.raises(ValueError, match="no foreground"):
        _kernels.squared_distances(np.zeros(12, np.uint8), 3, 4, out)
    with pytest.raises(ValueError, match="mask"):
        _kernels.squared_distances(np.ones(11, np.uint8), 3, 4, out)
    with pytest.raises(ValueError, match="out"):
        _kernels.squared_distances(np.ones(12, np.uint8), 3, 4, np.empty(11))


def test_importance_beyond_the_table_matches_scipy() -> None:
    """An image whose largest squared distance passes ``_LARGEST_TABLE`` computes each pixel's weight."""
    mask = np.zeros((1460, 1460), bool)
    mask[0, 0] = True
    assert wf._LARGEST_TABLE <= 2 * 1459**2
    expected = np.where(mask, 0.0, 2 - np.exp(np.log(0.5) / 5 * ndimage.distance_transform_edt(~mask)))
    np.testing.assert_allclose(wf._importance(mask), expected.ravel(), rtol=0, atol=1e-15)


def test_lookup_refuses_indices_outside_the_table() -> None:
    values = np.array([0.0, 2.0, 1.0])
    _kernels.lookup_inplace(np.array([5.0, 6.0, 7.0]), values)
    assert values.tolist() == [5.0, 7.0, 6.0]
    with pytest.raises(ValueError, match="entry 1"):
        _kernels.lookup_inplace(np.array([5.0, 6.0]), np.array([0.0, 2.0]))


@pytest.mark.parametrize("n_bins", [1, 8, 200])
def test_counts_are_numpys_bincount(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    levels = rng.integers(0, 256, (37, 41)).astype(np.uint8)
    levels[:5] = 7  # runs of one level
    index = rng.integers(0, n_bins, levels.shape).astype(np.uint8)
    expected = np.bincount((index.astype(int) * 256 + levels).ravel(), minlength=n_bins * 256)
    assert np.array_equal(count_levels(levels, index, n_bins, 256), expected.reshape(n_bins, 256))
    # a strided view is counted as its values
    assert np.array_equal(count_levels(levels[:, ::2], index[:, ::2], n_bins, 256).sum(), levels[:, ::2].size)


def test_counts_stay_exact_past_float32() -> None:
    """2**24 + 1 pixels of one level: a float32 histogram (cv2.calcHist) would say 2**24."""
    levels = np.zeros((1 << 24) + 1, np.uint8)
    counts = count_levels(levels, np.zeros_like(levels), 1, 256)
    assert counts[0, 0] == (1 << 24) + 1


def test_counts_refuse_bins_beyond_n_bins() -> None:
    counts = np.empty((2, 256))
    with pytest.raises(ValueError, match="bin 2"):
        _kernels.count_levels_u8(np.zeros(4, np.uint8), np.array([0, 1, 2, 0], np.uint8), 2, counts)
    with pytest.raises(ValueError, match="n_bins"):
        _kernels.count_levels_u8(np.zeros(4, np.uint8), np.zeros(4, np.uint8), 0, counts)
    with pytest.raises(ValueError, match="index"):
        _kernels.count_levels_u8(np.zeros(4, np.uint8), np.zeros(3, np.uint8), 2, counts)


def _ground() -> tuple[np.ndarray, wf.WeightedFGround]:
    """Two blobs far enough apart for two windows, one touching the image border."""
    gt = np.zeros((50, 70), np.uint8)
    cv2.ellipse(gt, (15, 12), (8, 6), 30.0, 0, 360, 255, -1)
    cv2.ellipse(gt, (62, 40), (9, 12), 0.0, 0, 360, 255, -1)
    ground = wf.ground_terms(gt > 128)
    assert ground is not None and len(ground.windows) == 2
    return gt, ground


def test_sixteen_bit_maps_match_pysodmetrics_on_their_normalised_values() -> None:
    """The 16-bit path of ``weighted_f_terms`` (cosal-matlab reads 16-bit maps): PySODMetrics' own
    ``cal_wfm`` of the same normalised float map is the oracle."""
    gt, ground = _ground()
    rng = np.random.default_rng(9)
    levels = rng.integers(0, 65536, gt.shape).astype(np.uint16)
    values = get_protocol("cosal-matlab").values(int(levels.min()), int(levels.max()), 65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = psm.WeightedFmeasure().cal_wfm(values[levels], gt > 128)
    assert wf.weighted_f(levels, values, ground) == pytest.approx(expected, abs=1e-9)


def test_weighted_f_terms_refuse_inconsistent_terms() -> None:
    gt, ground = _ground()
    levels = np.zeros(gt.shape, np.uint8)
    values = np.arange(256) / 255

    def terms(**change: object) -> list[float]:
        parts = {
            "maps": [levels],
            "values": values[None],
            "importance": ground.importance,
            "sources": ground.sources,
            "window_fg": ground.window_fg,
            "spans": ground.spans,
        } | change
        out = np.empty((len(parts["maps"]), 2))
        _kernels.weighted_f_terms(
            parts["maps"],
            1,
            parts["values"],
            parts["importance"],
            ground.windows,
            parts["sources"],
            parts["window_fg"],
            parts["spans"],
            wf._KERNEL,
            out,
        )
        return out.ravel().tolist()

    # an all-zero map: every pixel the filter reads carries error 1, so EA is the kernel's mass in the image
    fp, fg_error = terms()
    mass = ndimage.convolve(np.ones(gt.shape), np.outer(wf._KERNEL, wf._KERNEL), mode="constant")
    assert fp == 0.0 and fg_error == pytest.approx(mass[gt > 128].sum(), rel=1e-12)
    assert fg_error < ground.n_fg  # the second blob touches the border
    beyond = ground.sources.copy()
    beyond[0] = gt.size
    with pytest.raises(ValueError, match="source index"):
        terms(sources=beyond)
    outside = ground.window_fg.copy()
    outside[-1] = -1
    with pytest.raises(ValueError, match="foreground index"):
        terms(window_fg=outside)
    swapped = ground.window_fg.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # the column pass reads the foreground row by row, in order
    with pytest.raises(ValueError, match="out of order"):
        terms(window_fg=swapped)
    wide = ground.spans.copy()
    wide[1] = ground.windows[0, 3] + 1
    with pytest.raises(ValueError, match="row span"):
        terms(spans=wide)
    with pytest.raises(ValueError, match="values"):
        terms(values=values[None, :255])
    with pytest.raises(ValueError, match="map"):
        terms(importance=ground.importance[:-1])
    with pytest.raises(ValueError, match="map"):
        terms(maps=[levels, levels[:-1]], values=np.stack([values, values]))
    with pytest.raises(ValueError, match="sources"):
        terms(sources=ground.sources[:-1])


def test_maps_of_one_gt_together_get_their_values_alone() -> None:
    """``weighted_f_many`` reads the importance once for all maps: each value is the one-map value, bit for
    bit, for any number of maps and image sizes that are not a multiple of the tile or of 4."""
    rng = np.random.default_rng(4)
    for shape in [(50, 70), (67, 131), (3, 5)]:
        gt = np.zeros(shape, np.uint8)
        gt[shape[0] // 3 : shape[0] // 2 + 1, shape[1] // 4 : shape[1] // 2 + 1] = 255
        ground = wf.ground_terms(gt > 128)
        maps = [rng.integers(0, 256, shape).astype(np.uint8) for _ in range(5)]
        values = np.stack([np.sort(rng.random(256)) for _ in maps])
        together = wf.weighted_f_many(maps, values, ground)
        assert together == [
            wf.weighted_f(levels, row, ground) for levels, row in zip(maps, values, strict=True)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = [
                psm.WeightedFmeasure().cal_wfm(row[levels], gt > 128)
                for levels, row in zip(maps, values, strict=True)
            ]
        np.testing.assert_allclose(together, expected, rtol=0, atol=1e-9)
    assert wf.weighted_f_many([], np.zeros((0, 256)), ground) == []


def test_window_sources_refuse_windows_that_miss_foreground() -> None:
    gt, ground = _ground()
    mask = (gt > 128).view(np.uint8)
    near = cv2.dilate(mask, np.ones((7, 7), np.uint8))

    def fill(windows: np.ndarray) -> None:
        sources = np.empty(int((windows[:, 2] * windows[:, 3]).sum()), np.int32)
        fg, spans = np.empty(ground.n_fg, np.int32), np.empty(2 * int(windows[:, 2].sum()), np.int32)
        _kernels.window_sources(mask, near, *mask.shape, windows, wf._STEPS, sources, fg, spans)

    fill(ground.windows.copy())
    with pytest.raises(ValueError, match="do not match"):
        fill(ground.windows[:1].copy())  # only the first window: foreground left out
    outside = ground.windows.copy()
    outside[0, 0] = -1
    with pytest.raises(ValueError, match="outside the image"):
        fill(outside)
