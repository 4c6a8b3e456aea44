"""Faults met by ``cosalbench evaluate`` (and ``predict --evaluate``) on messy real data.

Each test drives the real CLI and asserts the exit status and either one error line naming the
path (no traceback, nothing written) or the correct result: exit 0 means every expected mask was
scored against the right file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench import io, layout
from cosalbench.datasets import synth

from .conftest import assert_no_traceback, assert_refused, cli, snapshot

SPEC = synth.SynthSpec(name="Toy", n_groups=2, images_per_group=3, height=24, width=32, seed=5)


def _prediction(mask: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root ``data`` (Toy, with its manifest) and two methods ``preds/a``, ``preds/b``."""
    root = tmp_path_factory.mktemp("pristine")
    synth.write_dataset(root / "data", SPEC)
    for sample in synth.generate(SPEC):
        for method, sigma in (("a", 2), ("b", 4)):
            folder = layout.prediction_dir(root / "preds", method, "Toy") / sample.group
            io.write_png(folder / f"{sample.stem}.png", cv2.GaussianBlur(sample.mask, (0, 0), sigmaX=sigma))
    return root


@pytest.fixture
def work(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the pristine tree to break."""
    shutil.copytree(pristine, tmp_path / "w", symlinks=True)
    return tmp_path / "w"


def _groups(work: Path) -> list[str]:
    return layout.list_groups(layout.gts_dir(work / "data", "Toy"))


def _gt(work: Path, stem: str = "0001", group: int = 0) -> Path:
    return layout.gts_dir(work / "data", "Toy") / _groups(work)[group] / f"{stem}.png"


def _pred(work: Path, stem: str = "0001", method: str = "a", group: int = 0) -> Path:
    return layout.prediction_dir(work / "preds", method, "Toy") / _groups(work)[group] / f"{stem}.png"


def _evaluate(work: Path, *extra: str | Path, pred: Path | None = None, out: Path | None = None):
    return cli(
        "evaluate",
        pred or work / "preds",
        "--dataset",
        "Toy",
        "--data-root",
        work / "data",
        "--out",
        out or work / "results",
        "--workers",
        "1",
        *extra,
    )


def _refused_without_outputs(work: Path, result, *fragments: str | Path) -> str:
    line = assert_refused(result, *fragments)
    assert not (work / "results").exists()
    assert not [p for p in work.iterdir() if ".staging-" in p.name]
    return line


def _document(work: Path, method: str = "a") -> dict:
    return json.loads((work / "results" / method / "Toy.json").read_text())


def _csv(out: Path, method: str = "a") -> str:
    return (out / method / "Toy.images.csv").read_text()


@pytest.fixture(scope="module")
def clean_csv(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Method ``a``'s per-image CSV on the intact data: what a correct result must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "results"
    result = _evaluate(pristine, out=out)
    assert result.returncode == 0, result.stderr
    assert "a/Toy: 6 of 6 ground-truth masks scored (expected: the manifest)" in result.stdout
    return _csv(out)


# --- the ground truth ---------------------------------------------------------------------------


def test_gt_broken_symlink_is_refused(work: Path) -> None:
    _gt(work).unlink()
    _gt(work).symlink_to(work / "gone.png")
    line = _refused_without_outputs(work, _evaluate(work), layout.gts_dir(work / "data", "Toy"), "0001.png")
    assert "broken symbolic link" in line and "--allow-incomplete-gt" in line


def test_gt_folder_in_place_of_a_mask_is_refused(work: Path) -> None:
    _gt(work).unlink()
    _gt(work).mkdir()
    line = _refused_without_outputs(work, _evaluate(work), "0001.png")
    assert "is a folder" in line


def test_gt_empty_file_is_refused(work: Path) -> None:
    _gt(work).write_bytes(b"")
    assert "is empty (0 bytes)" in _refused_without_outputs(work, _evaluate(work), "0001.png")


def test_gt_truncated_png_is_refused(work: Path) -> None:
    _gt(work).write_bytes(_gt(work).read_bytes()[:60])
    assert "not a readable image" in _refused_without_outputs(work, _evaluate(work), "0001.png")


def test_gt_interrupted_copy_is_refused_with_the_count(work: Path) -> None:
    for stem in ("0000", "0001", "0002"):
        _gt(work, stem, group=1).unlink()
    line = _refused_without_outputs(work, _evaluate(work), layout.gts_dir(work / "data", "Toy"))
    assert "3 of 6 expected masks usable" in line and "3 missing" in line
    assert f"{_groups(work)[1]}/0000" in line


def test_gt_empty_group_folder_is_refused(work: Path) -> None:
    for stem in ("0000", "0001", "0002"):
        _gt(work, stem, group=0).unlink()
    assert "3 missing" in _refused_without_outputs(work, _evaluate(work), _groups(work)[0])


def test_gt_mask_missing_from_the_manifest_is_refused(work: Path) -> None:
    shutil.copy(_gt(work), _gt(work, "0099"))
    line = _refused_without_outputs(work, _evaluate(work), f"{_groups(work)[0]}/0099")
    assert "1 not in the manifest" in line


def test_gt_photo_beside_the_mask_is_refused_naming_both(work: Path) -> None:
    shutil.copy(layout.images_dir(work / "data", "Toy") / _groups(work)[0] / "0001.jpg", _gt(work).parent)
    line = _refused_without_outputs(work, _evaluate(work), _gt(work).with_suffix(".jpg"))
    assert "0001.jpg and 0001.png" in line


def test_gt_without_manifest_is_checked_against_the_registry(work: Path) -> None:
    data = work / "data"
    os.rename(layout.gts_dir(data, "Toy"), layout.gts_dir(data, "iCoseg"))
    result = cli(
        "evaluate", work / "preds", "--dataset", "icoseg", "--data-root", data, "--out", work / "results"
    )
    line = _refused_without_outputs(work, result, layout.gts_dir(data, "iCoseg"))
    assert "the registry expects 643 in 38 groups" in line


def test_non_utf8_manifest_is_refused(work: Path) -> None:
    manifest = layout.manifest_path(work / "data", "Toy")
    manifest.write_bytes(manifest.read_bytes().replace(b"group", b"gr\xe9oupe", 1))
    assert "not UTF-8" in _refused_without_outputs(work, _evaluate(work), manifest)


def test_manifest_without_key_columns_is_refused(work: Path) -> None:
    layout.manifest_path(work / "data", "Toy").write_text("name,width\nx,3\n")
    line = _refused_without_outputs(work, _evaluate(work), layout.manifest_path(work / "data", "Toy"))
    assert "lacks the columns group and stem" in line


def test_incomplete_gt_allowed_explicitly_is_scored_and_flagged(work: Path, clean_csv: str) -> None:
    _gt(work, "0002", group=1).unlink()
    _gt(work, "0002", group=1).symlink_to(work / "gone.png")
    result = _evaluate(work, "--allow-incomplete-gt")
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    group = _groups(work)[1]
    assert "a/Toy: 5 of 6 ground-truth masks scored (expected: the manifest)" in result.stdout
    assert (
        "a/Toy: ground truth INCOMPLETE (--allow-incomplete-gt): 5 usable masks of 6 expected"
        in result.stdout
    )
    for method in ("a", "b"):
        doc = _document(work, method)
        assert doc["gt_complete"] is False and doc["n_images"] == 5
        assert doc["gt_check"] == {
            "reference": "manifest",
            "expected": 6,
            "found": 5,
            "missing": [],
            "unreadable": [f"{group}/0002.png (broken symbolic link (-> {work / 'gone.png'}))"],
            "unexpected": [],
        }
    # the five masks that are there get exactly the scores they have on the intact set
    intact = [line for line in clean_csv.splitlines() if not line.startswith(f"{group},0002,")]
    assert _csv(work / "results").splitlines() == intact


# --- the predictions ----------------------------------------------------------------------------


def test_prediction_photo_beside_the_map_is_refused_naming_both(work: Path) -> None:
    image = layout.images_dir(work / "data", "Toy") / _groups(work)[0] / "0001.jpg"
    shutil.copy(image, _pred(work).parent)
    line = _refused_without_outputs(work, _evaluate(work), _pred(work).with_suffix(".jpg"))
    assert "0001.jpg and 0001.png" in line and "--pred-ext" in line


def test_pred_ext_picks_the_map_and_gives_the_intact_numbers(work: Path, clean_csv: str) -> None:
    image = layout.images_dir(work / "data", "Toy") / _groups(work)[0] / "0001.jpg"
    shutil.copy(image, _pred(work).parent)
    result = _evaluate(work, "--pred-ext", "PNG")
    assert result.returncode == 0, result.stderr
    assert _csv(work / "results") == clean_csv


def test_unknown_pred_ext_is_refused(work: Path) -> None:
    assert_refused(_evaluate(work, "--pred-ext", "gif"), "--pred-ext 'gif'")


def test_prediction_broken_symlink_is_refused(work: Path) -> None:
    _pred(work).unlink()
    _pred(work).symlink_to(work / "gone.png")
    assert "broken symbolic link" in _refused_without_outputs(work, _evaluate(work), _pred(work))


def test_prediction_folder_in_place_of_a_map_is_refused(work: Path) -> None:
    _pred(work).unlink()
    _pred(work).mkdir()
    assert "is a folder" in _refused_without_outputs(work, _evaluate(work), _pred(work))


def test_prediction_group_folder_as_broken_link_is_refused(work: Path) -> None:
    group_dir = _pred(work).parent
    shutil.rmtree(group_dir)
    group_dir.symlink_to(work / "moved away")
    assert "broken symbolic link" in _refused_without_outputs(work, _evaluate(work), group_dir)


def test_method_dataset_folder_as_broken_link_is_refused(work: Path) -> None:
    dataset_dir = layout.prediction_dir(work / "preds", "b", "Toy")
    shutil.rmtree(dataset_dir)
    dataset_dir.symlink_to(work / "moved away")
    assert "broken symbolic link" in _refused_without_outputs(work, _evaluate(work), dataset_dir)


def test_prediction_empty_file_is_refused(work: Path) -> None:
    _pred(work).write_bytes(b"")
    assert "is empty (0 bytes)" in _refused_without_outputs(work, _evaluate(work), _pred(work))


def test_prediction_corrupt_png_is_refused(work: Path) -> None:
    _pred(work, method="b").write_bytes(_pred(work, method="b").read_bytes()[:50])
    _refused_without_outputs(work, _evaluate(work), _pred(work, method="b"))


def test_prediction_of_another_size_is_resized_and_scored(work: Path) -> None:
    psm = pytest.importorskip("py_sod_metrics")
    big = cv2.resize(
        cv2.imread(str(_pred(work)), cv2.IMREAD_GRAYSCALE), (64, 48), interpolation=cv2.INTER_CUBIC
    )
    io.write_png(_pred(work), big)
    result = _evaluate(work)
    assert result.returncode == 0, result.stderr
    gt = cv2.imread(str(_gt(work)), cv2.IMREAD_GRAYSCALE)
    measure = psm.Smeasure()
    measure.step(cv2.resize(big, gt.shape[::-1], interpolation=cv2.INTER_LINEAR), gt)
    row = [r for r in _csv(work / "results").splitlines() if r.startswith(f"{_groups(work)[0]},0001,")][0]
    assert float(row.split(",")[2]) == pytest.approx(measure.get_results()["sm"], abs=1e-9)


def test_empty_prediction_group_is_listed_as_missing(work: Path) -> None:
    group_dir = _pred(work).parent
    shutil.rmtree(group_dir)
    group_dir.mkdir()
    result = _evaluate(work)
    assert result.returncode == 0, result.stderr
    assert "a/Toy: 3 of 6 ground-truth masks scored" in result.stdout
    assert "a/Toy: 3 of 6 predictions missing" in result.stdout
    assert _document(work)["missing_predictions"] == [
        f"{_groups(work)[0]}/{s}" for s in ("0000", "0001", "0002")
    ]


# --- names and folders --------------------------------------------------------------------------


def test_dataset_with_trailing_slash_writes_normal_names(work: Path) -> None:
    result = cli(
        "evaluate",
        work / "preds",
        "--dataset",
        "Toy/",
        "--data-root",
        work / "data",
        "--out",
        work / "results",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (work / "results" / "a").iterdir()) == [
        "Toy.fingerprint.json",
        "Toy.images.csv",
        "Toy.json",
    ]


@pytest.mark.parametrize("name", ["../../x", ".hidden", "a/b", ".."])
def test_dataset_name_that_is_not_a_folder_name_is_refused(work: Path, name: str) -> None:
    result = cli(
        "evaluate", work / "preds", "--dataset", name, "--data-root", work / "data", "--out", work / "results"
    )
    _refused_without_outputs(work, result, repr(name), "not a plain folder name")


def test_hidden_method_folder_is_refused(work: Path) -> None:
    os.rename(work / "preds" / "b", work / "preds" / ".b")
    _refused_without_outputs(work, _evaluate(work), work / "preds" / ".b", "not a plain folder name")


def test_data_root_as_predictions_is_refused(work: Path) -> None:
    line = _refused_without_outputs(
        work, _evaluate(work, pred=work / "data"), work / "data", "is a data root"
    )
    assert "PRED/<method>/<Dataset>" in line


def test_ground_truth_folder_as_predictions_is_refused(work: Path) -> None:
    _refused_without_outputs(work, _evaluate(work, pred=work / "data" / "gts"), "data root's ground truth")


def test_json_reports_skipped_combinations_on_stderr(work: Path) -> None:
    synth.write_dataset(
        work / "data", synth.SynthSpec(name="Other", n_groups=1, images_per_group=2, height=24, width=32)
    )
    for sample in synth.generate(
        synth.SynthSpec(name="Other", n_groups=1, images_per_group=2, height=24, width=32)
    ):
        io.write_png(
            layout.prediction_dir(work / "preds", "a", "Other") / sample.group / f"{sample.stem}.png",
            sample.mask,
        )
    result = _evaluate(work, "--dataset", "Other", "--json")
    assert result.returncode == 0, result.stderr
    assert [(d["method"], d["dataset"]) for d in json.loads(result.stdout)] == [
        ("a", "Toy"),
        ("a", "Other"),
        ("b", "Toy"),
    ]
    assert "skipped b/Other: no prediction folder" in result.stderr
    assert "a/Other: 2 of 2 ground-truth masks scored" in result.stderr


# --- outputs ------------------------------------------------------------------------------------


def test_out_that_is_a_file_is_refused(work: Path) -> None:
    (work / "results").write_text("notes")
    line = assert_refused(_evaluate(work), work / "results", "not a folder")
    assert (work / "results").read_text() == "notes" and "\n" not in line


def test_method_result_folder_that_is_a_file_is_refused(work: Path) -> None:
    (work / "results").mkdir()
    (work / "results" / "b").write_text("notes")
    before = snapshot(work / "results")
    assert_refused(_evaluate(work), work / "results" / "b")
    assert snapshot(work / "results") == before


def test_failure_half_way_keeps_previous_results(work: Path) -> None:
    assert _evaluate(work).returncode == 0
    before = snapshot(work / "results")
    _pred(work, method="b").write_bytes(b"not a png at all")
    assert_refused(_evaluate(work), _pred(work, method="b"))
    assert snapshot(work / "results") == before


def test_full_disk_leaves_previous_results_and_says_so(work: Path, full_disk: Path) -> None:
    out = full_disk / "results"
    io.write_text(out / "a" / "Toy.json", "previous")
    before = snapshot(full_disk)
    line = assert_refused(_evaluate(work, out=out), full_disk, "the disk is full")
    assert "No space left on device" in line
    assert snapshot(full_disk) == before
    assert sorted(p.name for p in full_disk.iterdir()) == ["results"]


def test_predict_cbcs_evaluate_refuses_an_incomplete_ground_truth(work: Path) -> None:
    _gt(work, "0000", group=1).unlink()
    result = cli(
        "predict",
        "cbcs",
        "--dataset",
        "Toy",
        "--data-root",
        work / "data",
        "--out",
        work / "cb",
        "--evaluate",
    )
    assert_no_traceback(result)
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("cosalbench: error: ")]
    assert str(layout.gts_dir(work / "data", "Toy")) in line and "1 missing" in line


def test_validate_refuses_a_non_utf8_manifest_in_one_line(work: Path) -> None:
    manifest = layout.manifest_path(work / "data", "Toy")
    manifest.write_bytes(manifest.read_bytes() + b"caf\xe9,0001\n")
    line = assert_refused(cli("validate", "Toy", "--data-root", work / "data"), manifest)
    assert "not UTF-8" in line


def test_relative_out_writes_where_the_summary_says(work: Path) -> None:
    """``--out res`` (relative) puts ``res/a/Toy.json`` there, not in ``res/res/`` (a real bug: staging
    joined the already-prefixed relative paths to the output folder a second time)."""
    result = cli(
        "evaluate",
        "preds",
        "--dataset",
        "Toy",
        "--data-root",
        "data",
        "--out",
        "res",
        "--workers",
        "1",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote res/a/Toy.json" in result.stdout
    assert (work / "res" / "a" / "Toy.json").is_file() and not (work / "res" / "res").exists()
