"""``--protocol all`` and ``report --explain``: attribution on maps where only one convention matters."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench import io
from cosalbench.metrics import explain
from cosalbench.metrics.evaluate import plan_evaluation
from cosalbench.metrics.protocols import get_protocol
from tests.faults.conftest import cli

H, W = 48, 64


def _gt(top: int, left: int, height: int = 17, width: int = 23) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[top : top + height, left : left + width] = 255  # odd sizes: centroids never at x.5
    return mask


def _graded(gt: np.ndarray, seed: int) -> np.ndarray:
    """An unstretched map (0 and 255 present): bright object, dim noisy background."""
    rng = np.random.default_rng(seed)
    pred = np.where(gt > 0, rng.integers(140, 255, gt.shape), rng.integers(1, 60, gt.shape)).astype(np.uint8)
    pred[0, 0], pred[gt > 0][0] = 0, 255
    pred.flat[np.flatnonzero(gt)[0]] = 255
    return pred


def _write(root: Path, items: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]) -> explain.Explanation:
    for (group, stem), (gt, pred) in items.items():
        io.write_png(root / "data" / "gts" / "T" / group / f"{stem}.png", gt)
        io.write_png(root / "preds" / "m" / "T" / group / f"{stem}.png", pred)
    job = plan_evaluation(root / "preds", ["T"], root / "data").jobs[0]
    return explain.explain_job(job, ["sm", "mae", "maxem", "meanem", "maxfm", "meanfm"])


def _terms(e: explain.Explanation, protocol: str, aggregation: str, metric: str) -> dict[str, float]:
    return dict(e.terms[(protocol, aggregation)][metric])


def _labels(protocol: str) -> dict[str, str]:
    return {c.key: c.label for c in explain.conventions(protocol)}


def test_255_thresholds_explain_eval_co_sod_mean_f_and_e(tmp_path: Path) -> None:
    items = {("g", f"s{i}"): (gt := _gt(5 + 3 * i, 7 + 4 * i), _graded(gt, i)) for i in range(4)}
    e = _write(tmp_path, items)
    label = _labels("eval-co-sod")["thresholds"]
    for metric in ("meanfm", "meanem"):
        total = e.difference(("eval-co-sod", "image_mean"), metric)
        terms = _terms(e, "eval-co-sod", "image_mean", metric)
        assert abs(total) > 1e-3
        assert e.cause(("eval-co-sod", "image_mean"), metric) == label
        assert terms[label] == pytest.approx(total, abs=1e-5)
        assert terms[_labels("eval-co-sod")["soft_gt"]] == pytest.approx(0, abs=1e-9)  # binary GT
        assert terms[_labels("eval-co-sod")["resizing"]] == 0  # maps at GT size


def test_soft_gt_explains_eval_co_sod_mae(tmp_path: Path) -> None:
    items = {}
    for i in range(3):
        hard = _gt(6 + 5 * i, 9 + 3 * i)
        soft = cv2.GaussianBlur(hard, (0, 0), 2.0)  # anti-aliased edges: many grey levels
        items[("g", f"s{i}")] = (soft, np.where(soft > 128, 255, 0).astype(np.uint8))  # binary map
    e = _write(tmp_path, items)
    label = _labels("eval-co-sod")["soft_gt"]
    total = e.difference(("eval-co-sod", "image_mean"), "mae")
    assert total > 1e-3  # the soft edges count as error against a binary map
    assert e.cause(("eval-co-sod", "image_mean"), "mae") == label
    assert _terms(e, "eval-co-sod", "image_mean", "mae")[label] == pytest.approx(total, abs=1e-6)


def _off_colon_levels(pred: np.ndarray) -> np.ndarray:
    """``pred`` with every grey level moved to one where Matlab's colon threshold equals k/255."""
    exact = np.flatnonzero(get_protocol("cosal-matlab").thresholds == np.arange(256) / 255)
    return exact[np.minimum(np.searchsorted(exact, pred), exact.size - 1)].astype(np.uint8)


def test_matlab_colon_thresholds_explain_its_mean_f_on_unstretched_maps(tmp_path: Path) -> None:
    items = {("g", f"s{i}"): (gt := _gt(4 + 4 * i, 6 + 5 * i), _graded(gt, 10 + i)) for i in range(4)}
    e = _write(tmp_path, items)
    label = _labels("cosal-matlab")["colon_thresholds"]
    total = e.difference(("cosal-matlab", "image_mean"), "meanfm")
    assert abs(total) > 1e-4  # F uses >=: only the thresholds differ from pysodmetrics
    assert e.cause(("cosal-matlab", "image_mean"), "meanfm") == label
    assert _terms(e, "cosal-matlab", "image_mean", "meanfm")[label] == pytest.approx(total, abs=1e-12)


def test_strict_e_binarisation_explains_matlab_mean_e(tmp_path: Path) -> None:
    # On maps whose levels sit exactly on the thresholds, ">" shifts the E curve by one threshold: the
    # mean moves by (E of the empty map - E of the full map) / 256, which is 0 for an object GT
    # (both 0.25) and 1/256 for an empty GT (fraction of negatives: 1 and 0).
    items = {}
    for i in range(3):
        gt = _gt(4 + 4 * i, 6 + 5 * i) if i else np.zeros((H, W), np.uint8)
        items[("g", f"s{i}")] = (gt, _off_colon_levels(_graded(_gt(4, 6), 10 + i)))
    e = _write(tmp_path, items)
    assert e.difference(("cosal-matlab", "image_mean"), "meanfm") == pytest.approx(0, abs=1e-12)
    label = _labels("cosal-matlab")["e_strict"]
    total = e.difference(("cosal-matlab", "image_mean"), "meanem")
    assert total == pytest.approx(1 / 256 / 3, rel=1e-3)  # E is over N - 1 pixels, so slightly above
    assert e.cause(("cosal-matlab", "image_mean"), "meanem") == label
    terms = _terms(e, "cosal-matlab", "image_mean", "meanem")
    assert terms[label] == pytest.approx(total, abs=1e-12)
    assert terms[_labels("cosal-matlab")["adaptive_e"]] == 0  # 2 mean < 1: the clamp never acts
    assert e.difference(("cosal-matlab", "image_mean"), "sm") == pytest.approx(0, abs=1e-12)


def test_resizing_explains_matlab_mae_on_maps_smaller_than_the_gt(tmp_path: Path) -> None:
    items = {}
    for i in range(3):
        gt = _gt(8 + 3 * i, 10 + 5 * i)
        small = cv2.resize(_graded(gt, 20 + i), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        small[0, 0], small[-1, -1] = 0, 255
        items[("g", f"s{i}")] = (gt, small)
    e = _write(tmp_path, items)
    label = _labels("cosal-matlab")["resizing"]
    total = e.difference(("cosal-matlab", "image_mean"), "mae")
    assert abs(total) > 1e-4
    assert e.cause(("cosal-matlab", "image_mean"), "mae") == label
    assert _terms(e, "cosal-matlab", "image_mean", "mae")[label] == pytest.approx(total, abs=1e-9)


def test_group_mean_explains_the_aggregation_difference(tmp_path: Path) -> None:
    good = _gt(10, 10)
    bad = _gt(20, 30)
    items = {("a", "s0"): (good, good)} | {("b", f"s{i}"): (bad, _graded(_gt(2, 2 + i), i)) for i in range(3)}
    e = _write(tmp_path, items)
    column = ("pysodmetrics", "group_mean")
    total = e.difference(column, "sm")
    assert total > 0.05  # the perfect single-image group weighs a half instead of a quarter
    assert e.cause(column, "sm") == explain.AGGREGATION_LABEL
    assert _terms(e, *column, "sm")[explain.AGGREGATION_LABEL] == pytest.approx(total, abs=1e-12)


def test_protocol_all_writes_one_tree_per_protocol_and_explain_reads_them(tmp_path: Path) -> None:
    items = {("g", f"s{i}"): (gt := _gt(5 + 3 * i, 7 + 4 * i), _graded(gt, i)) for i in range(3)}
    _write(tmp_path, items)
    out = tmp_path / "results"
    result = cli("evaluate", tmp_path / "preds", "--dataset", "T", "--data-root", tmp_path / "data",
                 "--protocol", "all", "--out", out, "--workers", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for protocol in ("pysodmetrics", "eval-co-sod", "cosal-matlab"):
        doc = json.loads((out / protocol / "m" / "T.json").read_text())
        assert doc["protocol"] == protocol and doc["n_images"] == 3
        assert (out / protocol / "m" / "T.images.csv").is_file()
        assert f"wrote {out / protocol / 'm' / 'T.json'}" in result.stdout
    plain = cli("report", out, "--explain", "--metrics", "sm,meanfm")
    assert plain.returncode == 0, plain.stderr
    assert "m on T: (Δ) against pysodmetrics, image_mean" in plain.stdout and "--pred-root" in plain.stdout
    full = cli("report", out, "--explain", "--metrics", "sm,meanfm", "--pred-root", tmp_path / "preds",
               "--data-root", tmp_path / "data")  # fmt: skip
    assert full.returncode == 0, full.stderr
    assert "eval-co-sod, image_mean: meanFm" in full.stdout
    assert _labels("eval-co-sod")["thresholds"] in full.stdout and "note:" not in full.stdout
    # a document that no longer matches its maps is pointed out
    path = out / "eval-co-sod" / "m" / "T.json"
    doc = json.loads(path.read_text())
    doc["image_mean"]["sm"] += 0.01
    path.write_text(json.dumps(doc))
    changed = cli(
        "report", out, "--explain", "--pred-root", tmp_path / "preds", "--data-root", tmp_path / "data"
    )
    assert f"note: {path}: sm (image_mean)" in changed.stdout
