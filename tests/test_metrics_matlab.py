"""The ``cosal-matlab`` protocol against a literal re-derivation of Fan's CoSal Matlab benchmark.

The literal version follows ``main.m``/``Fmeasure_calu.m``/``Enhancedmeasure.m``/``StructureMeasure.m``
pixel by pixel in float64 (``mapminmax`` with a gain, Matlab's colon thresholds, F with ``>=``, E with
``>``, adaptive E unclamped, 1-based half-away centroid); the histogram engine must agree to 1e-9.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from cosalbench.imresize import imresize as matlab_imresize
from cosalbench.metrics.aggregate import aggregate_groups
from cosalbench.metrics.protocols import CURVE_KEYS, get_protocol
from tests.test_metrics_pysod_parity import degenerate_pairs, random_pairs

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

TOL = 1e-9
PROTOCOL = get_protocol("cosal-matlab")
EPS = 2.0**-52


def _colon(a: float, d: float, b: float) -> np.ndarray:
    """Matlab's ``a:d:b`` (Moler's colonop): both halves computed from their own end."""
    n = int(math.floor((b - a) / d + 1e-10))
    k = n // 2
    out = np.empty(n + 1)
    out[: k + 1] = a + np.arange(k + 1) * d
    out[n - np.arange(n - k)] = b - np.arange(n - k) * d
    return out


def _enhanced(binary: np.ndarray, gt: np.ndarray) -> float:
    n = gt.size
    if gt.sum() == 0:
        enhanced = 1.0 - binary
    elif (~gt).sum() == 0:
        enhanced = binary.astype(np.float64)
    else:
        fm = binary - binary.mean()
        g = gt - gt.mean()
        align = 2 * g * fm / (g * g + fm * fm + EPS)
        enhanced = (align + 1) ** 2 / 4
    return float(enhanced.sum() / (n - 1 + EPS))


def _f_measure(sal: np.ndarray, gt: np.ndarray, threshold: float) -> tuple[float, float, float]:
    threshold = min(threshold, 1.0)
    label = sal >= threshold
    n_and = int((label & gt).sum())
    if n_and == 0:
        return 0.0, 0.0, 0.0
    precision, recall = n_and / int(label.sum()), n_and / int(gt.sum())
    return precision, recall, 1.3 * precision * recall / (0.3 * precision + recall)


def _s_measure(sal: np.ndarray, gt: np.ndarray) -> float:
    y = gt.mean()
    if y == 0:
        return 1 - sal.mean()
    if y == 1:
        return sal.mean()

    def obj(values: np.ndarray) -> float:
        std = values.std(ddof=1) if values.size > 1 else 0.0
        return 2 * values.mean() / (values.mean() ** 2 + 1 + std + EPS)

    object_score = y * obj(sal[gt]) + (1 - y) * obj((1 - sal)[~gt])
    rows, cols = gt.shape
    total = gt.sum()
    x = math.floor((gt.sum(axis=0) * np.arange(1, cols + 1)).sum() / total + 0.5)
    yc = math.floor((gt.sum(axis=1) * np.arange(1, rows + 1)).sum() / total + 0.5)
    area = rows * cols
    w1, w2, w3 = x * yc / area, (cols - x) * yc / area, x * (rows - yc) / area
    region = 0.0
    blocks = ((slice(0, yc), slice(0, x)), (slice(0, yc), slice(x, cols)), (slice(yc, rows), slice(0, x)))
    for weight, block in zip(
        (w1, w2, w3, 1 - w1 - w2 - w3), (*blocks, (slice(yc, rows), slice(x, cols))), strict=True
    ):
        p, g = sal[block], gt[block].astype(np.float64)
        n = p.size
        if n == 0:
            region += math.nan
            continue
        # a constant quadrant's mean is its value (cosalbench's documented rule; Matlab's sum order is unknown)
        mx, my = (p.flat[0] if (p == p.flat[0]).all() else p.mean()), g.mean()
        sx, sy = ((p - mx) ** 2).sum() / (n - 1 + EPS), ((g - my) ** 2).sum() / (n - 1 + EPS)
        sxy = ((p - mx) * (g - my)).sum() / (n - 1 + EPS)
        alpha, beta = 4 * mx * my * sxy, (mx**2 + my**2) * (sx + sy)
        region += weight * (alpha / (beta + EPS) if alpha != 0 else (1.0 if beta == 0 else 0.0))
    score = 0.5 * object_score + 0.5 * region
    return 0.0 if score < 0 else score


def _literal(pred_u8: np.ndarray, gt_u8: np.ndarray) -> tuple[dict, dict]:
    sal = pred_u8 / 255
    lo, hi = sal.min(), sal.max()
    if hi > lo:
        sal = (sal - lo) * (1 / (hi - lo))
    gt = gt_u8 > 128
    curves = {key: [] for key in ("precision", "recall", "fm", "em")}
    for t in _colon(1, -1 / 255, 0):
        for key, value in zip(("precision", "recall", "fm"), _f_measure(sal, gt, t), strict=True):
            curves[key].append(value)
        curves["em"].append(_enhanced((sal > t).astype(np.float64), gt))
    threshold = 2 * sal.mean()
    scalars = {
        "mae": float(np.abs(sal - gt).mean()),
        "sm": float(_s_measure(sal, gt)),
        "adpfm": _f_measure(sal, gt, threshold)[2],
        "adpem": _enhanced((sal > threshold).astype(np.float64), gt),
    }
    return scalars, {key: np.array(value[::-1]) for key, value in curves.items()}


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Everything but the adaptive-threshold ties, whose outcome hangs on the summation order of a mean."""
    skip = {"adaptive-tie", "adaptive-tie-ulp"}
    return [case for case in degenerate_pairs() + random_pairs(n=50) if case[0] not in skip]


def test_colon_thresholds() -> None:
    ascending = PROTOCOL.thresholds
    np.testing.assert_array_equal(ascending, _colon(1, -1 / 255, 0)[::-1])
    exact = np.arange(256) / 255
    assert (ascending > exact).sum() == 14 and (ascending < exact).sum() == 22  # the colon-operator ulps


def test_per_image_against_literal() -> None:
    failures = []
    for name, pred, gt in _cases():
        ours = PROTOCOL.score(pred, gt)
        scalars, curves = _literal(pred, gt)
        for key, value in scalars.items():
            a = ours.scalars[key]
            if not ((math.isnan(a) and math.isnan(value)) or abs(a - value) <= TOL):
                failures.append((name, key, a, value))
        for key, value in curves.items():
            if not np.allclose(ours.curves[key], value, rtol=0, atol=TOL):
                failures.append((name, key, float(np.abs(ours.curves[key] - value).max())))
        assert ours.scalars["auc"] is None
        assert set(ours.curves) == set(CURVE_KEYS)
    assert not failures, failures[:10]


def test_matches_pysodmetrics_where_the_conventions_agree() -> None:
    """S (no x.5 centroid) and adaptive F are the same numbers as PySODMetrics (conventions §13.2)."""
    pysod = get_protocol("pysodmetrics")
    compared = 0
    for _, pred, gt in random_pairs(n=40):
        mask = gt > 128
        if not mask.any() or mask.all():
            continue
        means = [(np.nonzero(mask)[axis].mean()) % 1 for axis in (0, 1)]
        if 0.5 in means:
            continue
        ours, ref = PROTOCOL.score(pred, gt), pysod.score(pred, gt)
        assert ours.scalars["sm"] == pytest.approx(ref.scalars["sm"], abs=1e-12, nan_ok=True)
        assert ours.scalars["adpfm"] == pytest.approx(ref.scalars["adpfm"], abs=1e-12)
        compared += 1
    assert compared > 20


def test_centroid_rounding_half_away() -> None:
    gt = np.zeros((20, 20), np.uint8)
    gt[:, 2:4] = 255  # 1-based columns 3..4: mean 3.5 -> Matlab 4, PySOD round-half-even(2.5)+1 = 3
    pred = np.tile(np.linspace(0, 255, 20).astype(np.uint8), (20, 1))
    assert PROTOCOL.score(pred, gt).scalars["sm"] == pytest.approx(_s_measure(pred / 255, gt > 128), abs=TOL)
    assert PROTOCOL.score(pred, gt).scalars["sm"] != pytest.approx(
        get_protocol("pysodmetrics").score(pred, gt).scalars["sm"], abs=1e-6
    )


def test_group_mean_is_default() -> None:
    assert PROTOCOL.default_aggregation == "group_mean"
    cases = random_pairs(n=9)
    rows = [PROTOCOL.score(pred, gt) for _, pred, gt in cases]
    result = aggregate_groups(rows, ["a", "a", "b", "b", "b", "c", "c", "c", "c"], PROTOCOL)
    assert result["group_mean"]["metrics"]["auc"] is None
    expected = np.mean(
        [np.mean([row.scalars["mae"] for row in rows[s]]) for s in (slice(0, 2), slice(2, 5), slice(5, 9))]
    )
    assert result["group_mean"]["metrics"]["mae"] == pytest.approx(expected, abs=1e-15)


def test_imresize_bicubic_by_hand() -> None:
    # 2x upscaling: weights of the a=-0.5 cubic at offsets 0.25/0.75, edge pixels mirrored
    out = matlab_imresize(np.array([[100, 200]], np.uint8), (1, 4))
    np.testing.assert_array_equal(out, [[91, 120, 180, 209]])  # 1.09375*100 - 0.09375*200 = 90.625, ...
    flat = np.full((37, 23), 140, np.uint8)
    np.testing.assert_array_equal(matlab_imresize(flat, (11, 50)), np.full((11, 50), 140, np.uint8))
    ramp = np.tile(np.arange(0, 240, 2, dtype=np.uint8), (3, 1))  # 120 columns -> 60: antialiased average
    halved = matlab_imresize(ramp, (3, 60))
    assert np.abs(halved[0, 5:-5].astype(int) - (np.arange(0, 240, 4)[5:-5] + 1)).max() <= 1


def test_reading_like_imread(tmp_path) -> None:
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 200, 50
    Image.fromarray(rgb).save(tmp_path / "pred.png")
    np.testing.assert_array_equal(
        PROTOCOL.read_pred(tmp_path / "pred.png", (8, 10)), rgb[..., 0]
    )  # first channel
    palette = Image.fromarray(np.eye(8, 10, dtype=np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "gt.png")
    # imread returns the palette indices (0/1), which are not > 128: an all-background GT
    assert PROTOCOL.read_gt(tmp_path / "gt.png").max() == 0
    deep = (np.arange(80, dtype=np.uint16).reshape(8, 10) * 800).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    read = PROTOCOL.read_pred(tmp_path / "deep.png", (8, 10))
    assert read.dtype == np.uint16 and read.max() == 63200
    gt = np.zeros((8, 10), np.uint8)
    gt[2:6, 3:7] = 255
    literal = _literal((read / 65535 * 255).astype(np.float64), gt)  # same normalised map up to rounding
    assert PROTOCOL.score(read, gt).scalars["mae"] == pytest.approx(literal[0]["mae"], abs=1e-9)
