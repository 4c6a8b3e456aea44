"""Parity of the ``pysodmetrics`` protocol with pysodmetrics==1.6.2 itself, to 1e-9 on every number.

The oracle runs on ~170 generated maps covering the degenerate cases listed in
``../shared/reference/metrics-conventions.md`` (empty quadrant -> NaN, empty/full GT, constant maps,
1-pixel regions, centroids at exactly x.5, soft GT, stretched ranges, adaptive-threshold ties).
"""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cosalbench.errors import CosalbenchError
from cosalbench.metrics import measures
from cosalbench.metrics.aggregate import aggregate, aggregate_groups
from cosalbench.metrics.histogram import level_histogram
from cosalbench.metrics.protocols import CURVE_KEYS, SCALAR_KEYS, get_protocol

try:  # the generators below are shared with the other metrics tests, which do not need the oracle
    import py_sod_metrics as psm
except ImportError:
    psm = None

pytestmark = [
    pytest.mark.skipif(psm is None, reason="needs pysodmetrics==1.6.2 (pip install -e '.[dev]')"),
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning"),
]

TOL = 1e-9


def _blob(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8) * 255


def degenerate_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Hand-made corner cases (name, pred, gt), uint8."""
    rng = np.random.default_rng(1)
    h, w = 40, 60
    gt = _blob(h, w, 20, 30, 10, 14)
    smooth = cv2.GaussianBlur(gt, (0, 0), 4)
    cases = [(f"constant-{c}", np.full((h, w), c, np.uint8), gt) for c in (0, 1, 37, 128, 200, 255)]
    cases += [
        ("empty-gt", smooth, np.zeros((h, w), np.uint8)),
        ("empty-gt-constant", np.full((h, w), 90, np.uint8), np.zeros((h, w), np.uint8)),
        ("full-gt", smooth, np.full((h, w), 255, np.uint8)),
        ("full-gt-zero-pred", np.zeros((h, w), np.uint8), np.full((h, w), 255, np.uint8)),
        ("binary-pred", np.where(smooth > 100, 255, 0).astype(np.uint8), gt),
        ("two-levels", np.where(smooth > 100, 180, 50).astype(np.uint8), gt),
        ("perfect", gt.copy(), gt),
        ("inverted", 255 - gt, gt),
        ("stretched-10-200", rng.integers(10, 201, (h, w)).astype(np.uint8), gt),
        ("stretched-0-254", np.clip(smooth, 0, 254).astype(np.uint8), gt),
    ]
    one_fg = np.zeros((h, w), np.uint8)
    one_fg[10, 20] = 255
    cases.append(("one-pixel-fg", smooth, one_fg))
    one_bg = np.full((h, w), 255, np.uint8)
    one_bg[30, 50] = 0
    cases.append(("one-pixel-bg", smooth, one_bg))
    corner = np.zeros((h, w), np.uint8)
    corner[0, 0] = 255
    cases.append(("one-pixel-corner", smooth, corner))
    last_col = np.zeros((h, w), np.uint8)
    last_col[5:25, w - 1] = 255  # centroid column = W -> empty right quadrants -> NaN
    cases.append(("last-column", smooth, last_col))
    last_row = np.zeros((h, w), np.uint8)
    last_row[h - 1, 10:30] = 255
    cases.append(("last-row", smooth, last_row))
    first_col = np.zeros((h, w), np.uint8)
    first_col[5:25, 0] = 255
    cases.append(("first-column", smooth, first_col))
    for start in (2, 3):  # 0-based mean column start + 0.5: half-even rounding differs by parity
        half = np.zeros((h, w), np.uint8)
        half[start : start + 2 + 10, start : start + 2] = 255
        cases.append((f"centroid-half-{start}", smooth, half))
    soft = cv2.GaussianBlur(gt, (0, 0), 2)
    soft = (soft // 40 * 40).astype(np.uint8)  # a handful of grey levels, some above 128
    cases.append(("soft-gt", smooth, soft))
    tie = np.zeros((10, 10), np.uint8)  # 2 * mean equals the level 102 (0.4): adaptive tie
    tie.flat[:25] = 102
    tie.flat[25:35] = 255
    tie_gt = np.zeros((10, 10), np.uint8)
    tie_gt[:4] = 255
    cases.append(("adaptive-tie", tie, tie_gt))
    ulp_tie = np.zeros(300, np.uint8)  # 2 * mean == 3/255 up to numpy's summation order
    ulp_tie[:65] = 3
    ulp_tie[65] = 255
    ulp_gt = np.zeros((15, 20), np.uint8)
    ulp_gt[:5] = 255
    cases.append(("adaptive-tie-ulp", ulp_tie.reshape(15, 20), ulp_gt))
    flat = np.full((h, w), 77, np.uint8)  # constant non-dyadic quadrants
    flat[:3, :3] = 0
    flat[-2:, -2:] = 255
    cases.append(("constant-quadrants", flat, gt))
    cases.append(
        ("tiny-3x3", np.array([[0, 50, 100], [150, 200, 250], [10, 20, 30]], np.uint8), corner[:3, :3])
    )
    cases.append(("row-1xN", smooth[20:21].copy(), gt[20:21].copy()))
    return cases


def random_pairs(seed: int = 0, n: int = 140) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Seeded random maps: blobs, rectangles, several objects, noise, blur, stretched ranges, soft GT."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        h, w = int(rng.integers(40, 121)), int(rng.integers(60, 161))
        kind = i % 7
        if kind == 1:  # axis-aligned rectangle: centroids at x.5 are frequent
            gt = np.zeros((h, w), np.uint8)
            y0, x0 = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
            gt[y0 : int(rng.integers(y0 + 1, h + 1)), x0 : int(rng.integers(x0 + 1, w + 1))] = 255
        elif kind == 2:  # several objects
            gt = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                gt |= _blob(
                    h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, h / 3), rng.uniform(2, w / 3)
                )
        else:
            gt = _blob(
                h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, h / 2), rng.uniform(1, w / 2)
            )
        if kind == 3:  # soft GT
            gt = cv2.GaussianBlur(gt, (0, 0), rng.uniform(0.5, 3))
        shift = (int(rng.integers(-8, 9)), int(rng.integers(-8, 9)))
        base = cv2.GaussianBlur(
            np.roll(gt, shift, axis=(0, 1)).astype(np.float64), (0, 0), rng.uniform(0.5, 6)
        )
        lo, hi = sorted(rng.integers(0, 256, 2).tolist()) if kind == 4 else (0, 255)
        pred = lo + (hi - lo) * base / 255 + rng.normal(0, rng.uniform(0, 25), (h, w))
        if kind == 5:
            pred = rng.uniform(0, 255, (h, w))
        pred = np.clip(pred, lo, max(hi, lo + 1)).astype(np.uint8)
        if kind == 6:
            pred = (pred // 64 * 64).astype(np.uint8)  # few levels
        cases.append((f"random-{i}", pred, gt))
    return cases


def generated_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """All parity cases: the degenerate ones, then the random ones."""
    return degenerate_pairs() + random_pairs()


def _reference(pred: np.ndarray, gt: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """PySODMetrics' numbers for one image, curves flipped to ascending thresholds."""
    sm, mae, em, fm, wfm = psm.Smeasure(), psm.MAE(), psm.Emeasure(), psm.Fmeasure(), psm.WeightedFmeasure()
    rates = psm.FmeasureV2({"tpr": psm.TPRHandler(True, False), "fpr": psm.FPRHandler(True, False)})
    for metric in (sm, mae, em, fm, wfm, rates):
        metric.step(pred, gt)
    e, f = em.get_results()["em"], fm.get_results()
    r = rates.get_results()
    scalars = {
        "sm": sm.get_results()["sm"],
        "mae": mae.get_results()["mae"],
        "wfm": wfm.get_results()["wfm"],
        "adpem": e["adp"],
        "adpfm": f["fm"]["adp"],
        "maxem": e["curve"].max(),
        "meanem": e["curve"].mean(),
        "maxfm": f["fm"]["curve"].max(),
        "meanfm": f["fm"]["curve"].mean(),
    }
    curves = {
        "precision": f["pr"]["p"],
        "recall": f["pr"]["r"],
        "fm": f["fm"]["curve"],
        "em": e["curve"],
        "tpr": r["tpr"]["dynamic"],
        "fpr": r["fpr"]["dynamic"],
    }
    return {k: float(v) for k, v in scalars.items()}, {k: v[::-1] for k, v in curves.items()}


def _example_auc(tpr: np.ndarray, fpr: np.ndarray) -> float:
    """PySODMetrics' examples: ascending thresholds, stable argsort on x, trapezoid, no endpoints."""
    order = np.argsort(fpr, kind="stable")
    return float(np.trapezoid(tpr[order], fpr[order]))


def _close(a: float | None, b: float, tol: float = TOL) -> bool:
    return a is not None and ((math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol)


@pytest.fixture(scope="module")
def scored():
    """(name, pred, gt, cosalbench scores, reference scalars, reference curves) for every case."""
    protocol = get_protocol("pysodmetrics")
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, pred, gt in generated_pairs():
            ref_scalars, ref_curves = _reference(pred, gt)
            rows.append((name, pred, gt, protocol.score(pred, gt, wfm=True), ref_scalars, ref_curves))
    return rows


def test_per_image_parity(scored) -> None:
    failures = []
    for name, _, _, ours, ref_scalars, ref_curves in scored:
        for key, value in ref_scalars.items():
            if not _close(ours.scalars[key], value):
                failures.append((name, key, ours.scalars[key], value))
        for key in CURVE_KEYS:
            assert ours.curves[key].shape == (256,)
            if not np.allclose(ours.curves[key], ref_curves[key], rtol=0, atol=TOL):
                failures.append((name, key, np.abs(ours.curves[key] - ref_curves[key]).max()))
        if not _close(ours.scalars["auc"], _example_auc(ref_curves["tpr"], ref_curves["fpr"])):
            failures.append((name, "auc"))
    assert not failures, failures[:10]


@st.composite
def _tiny_pairs(draw) -> tuple[np.ndarray, np.ndarray]:
    shape = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    levels = st.sampled_from([0, 1, 3, 77, 127, 128, 129, 200, 254, 255]) | st.integers(0, 255)
    pred = draw(arrays(np.uint8, shape, elements=levels))
    gt = draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 255]) | st.integers(0, 255)))
    return pred, gt


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_tiny_pairs())
def test_tiny_maps_parity(pair) -> None:
    """Arbitrary tiny maps (1x1 up to 9x9, any grey levels, soft GT): every number to 1e-9."""
    pred, gt = pair
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref_scalars, ref_curves = _reference(pred, gt)
        ours = get_protocol("pysodmetrics").score(pred, gt, wfm=True)
    for key, value in ref_scalars.items():
        tol = TOL * max(1.0, abs(value)) if math.isfinite(value) else TOL  # E over (N - 1 + eps) can be huge
        assert _close(ours.scalars[key], value, tol), (key, ours.scalars[key], value)
    for key in CURVE_KEYS:
        scale = np.maximum(1.0, np.abs(ref_curves[key]))
        assert np.all(np.abs(ours.curves[key] - ref_curves[key]) <= TOL * scale), key


def test_degenerate_cases_are_exercised(scored) -> None:
    by_name = {row[0]: row for row in scored}
    assert math.isnan(by_name["last-column"][3].scalars["sm"])  # empty quadrant -> NaN, as PySOD 1.6.2
    assert math.isnan(by_name["last-row"][3].scalars["sm"])
    assert math.isfinite(by_name["one-pixel-fg"][3].scalars["sm"])  # single-pixel region: finite
    assert by_name["empty-gt"][3].scalars["wfm"] == 0.0
    assert by_name["perfect"][3].scalars["sm"] == pytest.approx(1.0)
    # the two x.5 centroids round differently (half-to-even on 0-based coordinates)
    assert measures.centroid_half_even(np.array([0, 0, 1, 1])) == 3
    assert measures.centroid_half_even(np.array([0, 0, 0, 1, 1])) == 5


def test_dataset_aggregation_matches_pysodmetrics(scored) -> None:
    """Flat means over the finite-S images, and NaN propagation when one image is NaN."""
    rows = [row for row in scored if math.isfinite(row[4]["sm"])]
    classes = {
        "sm": psm.Smeasure(),
        "mae": psm.MAE(),
        "em": psm.Emeasure(),
        "fm": psm.Fmeasure(),
        "wfm": psm.WeightedFmeasure(),
        "rates": psm.FmeasureV2({"tpr": psm.TPRHandler(True, False), "fpr": psm.FPRHandler(True, False)}),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, pred, gt, *_ in rows:
            for metric in classes.values():
                metric.step(pred, gt)
    e, f = classes["em"].get_results()["em"], classes["fm"].get_results()
    rates = classes["rates"].get_results()
    tpr, fpr = rates["tpr"]["dynamic"][::-1], rates["fpr"]["dynamic"][::-1]
    expected = {
        "sm": classes["sm"].get_results()["sm"],
        "mae": classes["mae"].get_results()["mae"],
        "wfm": classes["wfm"].get_results()["wfm"],
        "adpem": e["adp"],
        "maxem": e["curve"].max(),
        "meanem": e["curve"].mean(),
        "adpfm": f["fm"]["adp"],
        "maxfm": f["fm"]["curve"].max(),
        "meanfm": f["fm"]["curve"].mean(),
        "auc": _example_auc(tpr, fpr),
    }
    result = aggregate([row[3] for row in rows], get_protocol("pysodmetrics"))
    for key, value in expected.items():
        assert result["metrics"][key] == pytest.approx(float(value), abs=TOL), key
    np.testing.assert_allclose(result["curves"]["fm"], f["fm"]["curve"][::-1], rtol=0, atol=TOL)
    np.testing.assert_allclose(result["curves"]["precision"], f["pr"]["p"][::-1], rtol=0, atol=TOL)
    np.testing.assert_allclose(result["curves"]["fpr"], fpr, rtol=0, atol=TOL)
    assert result["curves"]["threshold"] == pytest.approx(np.linspace(0, 1, 256).tolist(), abs=1e-15)
    assert set(result["metrics"]) == set(SCALAR_KEYS)
    with_nan = aggregate([row[3] for row in scored], get_protocol("pysodmetrics"))
    assert math.isnan(with_nan["metrics"]["sm"])  # a NaN image makes the mean NaN, as in PySOD


def test_group_mean_matches_pysodmetrics_per_group(scored) -> None:
    """group_mean = PySODMetrics run group by group, scalars and curves then averaged over groups."""
    rows = [row for row in scored if math.isfinite(row[4]["sm"])][:60]
    names = [f"g{i % 4}" for i in range(len(rows))]
    result = aggregate_groups([row[3] for row in rows], names, get_protocol("pysodmetrics"))
    group_s, group_f, group_e = [], [], []
    for group in sorted(set(names)):
        sm, em, fm = psm.Smeasure(), psm.Emeasure(), psm.Fmeasure()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for (_, pred, gt, *_), name in zip(rows, names, strict=True):
                if name == group:
                    for metric in (sm, em, fm):
                        metric.step(pred, gt)
        group_s.append(sm.get_results()["sm"])
        group_e.append(em.get_results()["em"]["curve"])
        group_f.append(fm.get_results()["fm"]["curve"])
        assert result["groups"][group]["metrics"]["sm"] == pytest.approx(group_s[-1], abs=TOL)
    metrics = result["group_mean"]["metrics"]
    assert metrics["sm"] == pytest.approx(float(np.mean(group_s)), abs=TOL)
    assert metrics["maxfm"] == pytest.approx(float(np.mean(group_f, axis=0).max()), abs=TOL)
    assert metrics["meanem"] == pytest.approx(float(np.mean(group_e, axis=0).mean()), abs=TOL)
    assert list(result["groups"]) == sorted(set(names))


def test_s_measure_micro_oracle() -> None:
    """DengPingFan/S-measure#1: 4x4 GT with a 2x2 centre square; Fan quotes 0.898 (float map)."""
    gt = np.zeros((4, 4), np.uint8)
    gt[1:3, 1:3] = 255
    float_map = np.array([[0, 0, 0, 0], [0, 0.9, 0.9, 0], [0, 0.9, 0.9, 0], [0, 0.1, 0.1, 0]])
    levels = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 2, 2, 0]], np.uint8)
    values = (np.array([0.0, 0.9, 0.1]) - 0.0) / (0.9 - 0.0)  # min-max normalised float levels
    mask = gt > 128
    split = (
        measures.centroid_half_even(np.count_nonzero(mask, axis=1)),
        measures.centroid_half_even(np.count_nonzero(mask, axis=0)),
    )
    quadrants = level_histogram(levels, mask, 2, 3, split)
    ours = measures.s_measure(quadrants, values, (4, 4), split)
    reference = psm.Smeasure()
    reference.step(float_map / 0.9, mask, normalize=False)
    assert ours == pytest.approx(reference.get_results()["sm"], abs=1e-12)
    assert round(ours, 6) == 0.898103
    uint8_map = (float_map * 255).astype(np.uint8)  # 0.9 * 255 -> 229, via PySOD's normal path
    assert get_protocol("pysodmetrics").score(uint8_map, gt).scalars["sm"] == pytest.approx(
        _reference(uint8_map, gt)[0]["sm"], abs=1e-12
    )


def test_larger_maps_parity() -> None:
    """A few maps at a realistic size (300x400), dataset-level numbers."""
    rng = np.random.default_rng(3)
    pairs = []
    for _ in range(5):
        gt = _blob(
            300, 400, rng.uniform(60, 240), rng.uniform(80, 320), rng.uniform(20, 120), rng.uniform(20, 150)
        )
        blurred = cv2.GaussianBlur(np.roll(gt, 7, axis=1).astype(np.float64), (0, 0), 6)
        pairs.append((np.clip(blurred * 0.8 + rng.normal(20, 15, gt.shape), 0, 255).astype(np.uint8), gt))
    ours = aggregate(
        [get_protocol("pysodmetrics").score(pred, gt) for pred, gt in pairs], get_protocol("pysodmetrics")
    )
    sm, em, fm = psm.Smeasure(), psm.Emeasure(), psm.Fmeasure()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pred, gt in pairs:
            for metric in (sm, em, fm):
                metric.step(pred, gt)
    assert ours["metrics"]["sm"] == pytest.approx(sm.get_results()["sm"], abs=TOL)
    assert ours["metrics"]["adpem"] == pytest.approx(em.get_results()["em"]["adp"], abs=TOL)
    np.testing.assert_allclose(ours["curves"]["em"], em.get_results()["em"]["curve"][::-1], rtol=0, atol=TOL)
    np.testing.assert_allclose(ours["curves"]["fm"], fm.get_results()["fm"]["curve"][::-1], rtol=0, atol=TOL)


def test_reading_and_resizing(tmp_path) -> None:
    protocol = get_protocol("pysodmetrics")
    gt = _blob(30, 40, 15, 20, 8, 10)
    pred = np.dstack([np.full((20, 24), v, np.uint8) for v in (10, 120, 250)])  # BGR, other size
    cv2.imwrite(str(tmp_path / "gt.png"), gt)
    cv2.imwrite(str(tmp_path / "pred.png"), pred)
    read_gt = protocol.read_gt(tmp_path / "gt.png")
    np.testing.assert_array_equal(read_gt, gt)
    read_pred = protocol.read_pred(tmp_path / "pred.png", read_gt.shape)
    grey = cv2.cvtColor(pred, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(read_pred, cv2.resize(grey, (40, 30), interpolation=cv2.INTER_LINEAR))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(CosalbenchError, match="bad.png"):
        protocol.read_pred(tmp_path / "bad.png", read_gt.shape)
    with pytest.raises(CosalbenchError, match="differs"):
        protocol.score(grey, gt)
    with pytest.raises(CosalbenchError, match="unknown protocol"):
        get_protocol("matlab")


@pytest.mark.parametrize("n_bins", [1, 2, 8, 100, 256, 300])
def test_count_levels_counts_every_bin_and_level(n_bins: int) -> None:
    """OpenCV's 2-D histogram and the bincount path count exactly what np.bincount does."""
    from cosalbench.metrics.histogram import class_quadrant_index, count_levels

    rng = np.random.default_rng(n_bins)
    bins = rng.integers(0, n_bins, (45, 61))
    index = class_quadrant_index(bins, n_bins, None)
    for levels, n_levels in ((rng.integers(0, 256, bins.shape).astype(np.uint8), 256),
                             (rng.integers(0, 65536, bins.shape).astype(np.uint16), 65536)):  # fmt: skip
        expected = np.bincount((bins * n_levels + levels).ravel(), minlength=n_bins * n_levels)
        assert np.array_equal(
            count_levels(levels, index, n_bins, n_levels), expected.reshape(n_bins, n_levels)
        )
