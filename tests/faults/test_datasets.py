"""Faults in dataset inputs and outputs: ``standardize``, ``validate``, ``export``, ``datasets``, ``build-coco-seg``.

Each test breaks one thing the way real downloads and disks break, runs the real command line and
checks the exit status, the single error line naming the path, that there is no traceback, and
that nothing was half-written (or that the result is the correct one).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench.datasets.locking import lock_path
from tests.faults.conftest import assert_no_traceback, assert_refused, cli, snapshot
from tests.test_coco_seg_rule import write_coco
from tests.test_standardize_fakes import make_clean

RED = "red disc"


def standardize(src: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("standardize", "Clean", "--src", src, "--data-root", root, "--no-progress", *extra)


def report_of(result: subprocess.CompletedProcess[str]) -> dict:
    assert_no_traceback(result)
    return json.loads(result.stdout)


def fill(folder: Path) -> None:
    """Use up every free byte of the file system holding ``folder``."""
    try:
        with open(folder / "filler", "wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
    except OSError:
        pass


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A clean download: 2 groups of 3 pairs (``Image/`` + ``GroundTruth/``)."""
    return make_clean(tmp_path / "download").src


@pytest.fixture
def root(src: Path, tmp_path: Path) -> Path:
    """A data root holding a complete standardization of ``src``."""
    data_root = tmp_path / "data"
    done = standardize(src, data_root)
    assert done.returncode == 0, done.stderr
    return data_root


@pytest.fixture
def read_only_dir(full_disk: Path) -> Path:
    """An empty read-only file system: the ``full_disk`` tmpfs remounted ``ro``."""
    done = subprocess.run(["mount", "-o", "remount,ro", str(full_disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    return full_disk


# --- standardize: unreadable sources are reported, never dropped or crashed on -------------------


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("dangling image", "broken symbolic link"),
        ("dangling mask", "broken symbolic link"),
        ("folder as image", "is a folder, not a file"),
        ("empty image", "is empty (0 bytes)"),
        ("empty mask", "is empty (0 bytes)"),
    ],
)
def test_unreadable_source_is_reported_and_counted(
    src: Path, tmp_path: Path, breakage: str, problem: str
) -> None:
    tree = "GroundTruth" if "mask" in breakage else "Image"
    victim = src / tree / RED / ("0001.png" if tree == "GroundTruth" else "0001.jpg")
    victim.unlink()
    if breakage.startswith("dangling"):
        victim.symlink_to(tmp_path / "moved-away.jpg")
    elif breakage.startswith("folder"):
        victim.mkdir()
    else:
        victim.write_bytes(b"")
    result = standardize(src, tmp_path / "data", "--json")
    report = report_of(result)
    assert result.returncode == 3  # usable with warnings, never 0
    assert report["unreadable"] == [
        {"path": f"{tree}/{RED}/{victim.name}", "problem": report["unreadable"][0]["problem"]}
    ]
    assert report["unreadable"][0]["problem"].startswith(problem)
    assert (report["counts"]["images"], report["counts"]["source_pairs"]) == (5, 6)
    assert not (tmp_path / "data" / "images" / "Clean" / RED / "0001.jpg").exists()
    text = standardize(src, tmp_path / "data")
    assert "Clean: 5 of 6 pairs standardized in 2 groups; 1 unreadable file(s) skipped" in text.stdout


def test_same_stem_in_two_formats_keeps_the_jpeg_and_warns(src: Path, tmp_path: Path) -> None:
    jpeg = src / "Image" / RED / "0001.jpg"
    cv2.imwrite(str(jpeg.with_suffix(".png")), np.zeros((24, 32, 3), np.uint8))
    result = standardize(src, tmp_path / "data", "--json")
    report = report_of(result)
    assert result.returncode == 3
    assert report["conflicting_files"] == [
        {"kept": f"Image/{RED}/0001.jpg", "ignored": f"Image/{RED}/0001.png"}
    ]
    assert (tmp_path / "data" / "images" / "Clean" / RED / "0001.jpg").read_bytes() == jpeg.read_bytes()


def test_a_readable_file_wins_over_a_broken_one_with_the_same_stem(src: Path, tmp_path: Path) -> None:
    (src / "Image" / RED / "0001.bmp").mkdir()  # a folder named like an image, sorted after .jpg
    (src / "Image" / RED / "0002.jpg").unlink()
    (src / "Image" / RED / "0002.jpg").mkdir()
    cv2.imwrite(str(src / "Image" / RED / "0002.png"), np.full((24, 32, 3), 80, np.uint8))
    report = report_of(standardize(src, tmp_path / "data", "--json"))
    assert {c["kept"] for c in report["conflicting_files"]} == {
        f"Image/{RED}/0001.jpg",
        f"Image/{RED}/0002.png",
    }
    assert report["counts"]["images"] == 6 and report["unreadable"] == []


def test_empty_group_folder_is_a_warning(src: Path, tmp_path: Path) -> None:
    (src / "Image" / "ghost").mkdir()
    (src / "GroundTruth" / "ghost").mkdir()
    result = standardize(src, tmp_path / "data", "--json")
    assert result.returncode == 3
    assert report_of(result)["empty_groups"] == ["Image/ghost", "GroundTruth/ghost"]


def test_data_root_that_is_a_file_is_refused(src: Path, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    assert_refused(standardize(src, tmp_path / "data"), tmp_path / "data", "not a folder")


def test_hostile_dataset_name_is_refused(src: Path, tmp_path: Path) -> None:
    result = cli("standardize", "../escape", "--src", src, "--data-root", tmp_path / "data", "--no-progress")
    assert_refused(result, "'../escape'")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "data").exists()


def test_full_disk_during_standardize_is_one_line_and_writes_no_manifest(src: Path, full_disk: Path) -> None:
    fill(full_disk)
    result = standardize(src, full_disk / "data", "--link", "copy")
    assert_refused(result, full_disk, "the disk is full")
    assert not (full_disk / "data" / "manifests" / "Clean.csv").exists()
    assert not [p for p in (full_disk / "data").rglob("*.tmp.*")]  # no temporaries left behind


def test_read_only_data_root_is_one_line(src: Path, read_only_dir: Path) -> None:
    assert_refused(standardize(src, read_only_dir / "data"), read_only_dir, "read-only")


def test_interrupted_run_is_resumed_by_a_rerun(src: Path, root: Path) -> None:
    (root / "manifests" / "Clean.csv").unlink()  # as if stopped before the manifest was written
    (root / "manifests" / "Clean.report.json").unlink()
    (root / "gts" / "Clean" / RED / "0002.png").unlink()
    (root / "gts" / "Clean" / RED / "0001.4242.tmp.png").write_bytes(b"half")
    result = standardize(src, root)
    assert result.returncode == 0, result.stderr
    assert "wrote 0 image(s) and 1 mask(s)" in result.stdout
    assert not (root / "gts" / "Clean" / RED / "0001.4242.tmp.png").exists()
    assert cli("validate", "Clean", "--data-root", root, "--no-progress").returncode == 0


def test_a_second_concurrent_standardize_is_refused(src: Path, root: Path) -> None:
    before = snapshot(root)
    with open(lock_path(root, "Clean"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = standardize(src, root, "--overwrite")
    assert_refused(result, lock_path(root, "Clean"), "another process is writing Clean")
    assert snapshot(root) == before


def test_two_runs_started_together_leave_a_valid_dataset(src: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    args = [sys.executable, "-m", "cosalbench.cli", "standardize", "Clean", "--src", str(src),
            "--data-root", str(root), "--no-progress", "--link", "copy"]  # fmt: skip
    runs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    for status, stderr in outcomes:
        assert "Traceback" not in stderr
        assert status == 0 or (status == 2 and "another process is writing Clean" in stderr), stderr
    assert 0 in [status for status, _ in outcomes]
    assert cli("validate", "Clean", "--data-root", root, "--no-progress").returncode == 0
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]


# --- validate ---------------------------------------------------------------------------------------


def test_non_utf8_manifest_is_one_line_with_the_byte_offset(root: Path) -> None:
    manifest = root / "manifests" / "Clean.csv"
    data = manifest.read_bytes()
    manifest.write_bytes(data[:40] + b"\xff" + data[40:])
    assert_refused(cli("validate", "Clean", "--data-root", root), manifest, "not UTF-8 text (byte 40 of")


def test_manifest_row_escaping_the_data_root_is_refused(root: Path) -> None:
    manifest = root / "manifests" / "Clean.csv"
    text = manifest.read_text(encoding="utf-8").replace(f"{RED},0000,", "../../..,0000,", 1)
    manifest.write_text(text, encoding="utf-8")
    assert_refused(cli("validate", "Clean", "--data-root", root), manifest, "'../../..' is not a plain name")


def test_broken_output_link_is_missing_and_not_complete(root: Path) -> None:
    image = root / "images" / "Clean" / RED / "0001.jpg"
    image.unlink()
    image.symlink_to(root / "nowhere.jpg")
    result = cli("validate", "Clean", "--data-root", root, "--json", "--no-progress")
    assert result.returncode == 3
    assert report_of(result)["missing"] == [f"images/Clean/{RED}/0001.jpg"]


def test_corrupt_report_makes_the_dataset_not_complete(root: Path) -> None:
    (root / "manifests" / "Clean.report.json").write_text('{"status": "comp')
    result = cli("validate", "Clean", "--data-root", root, "--json", "--no-progress")
    assert result.returncode == 3 and report_of(result)["standardize_status"] is None


def test_validate_without_a_manifest_is_one_line(tmp_path: Path) -> None:
    assert_refused(cli("validate", "Clean", "--data-root", tmp_path), "Clean.csv", "no manifest")


# --- export -----------------------------------------------------------------------------------------


def export(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("export", "Clean", "--style", "cosal-matlab", "--out", out, "--data-root", root, *extra)


def test_export_places_every_file_and_says_so(root: Path, tmp_path: Path) -> None:
    result = export(root, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "12 of 12 file(s) in place (12 new, 0 already there, 0 stale removed)" in result.stdout
    placed = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*"))
    assert len(placed) == 12 and f"Dataset/Clean/Image/{RED}/0001.jpg" in placed
    again = export(root, tmp_path / "out")
    assert "(0 new, 12 already there, 0 stale removed)" in again.stdout


@pytest.mark.parametrize("breakage", ["dangling", "folder", "empty", "deleted"])
def test_export_refuses_an_unreadable_file_and_writes_nothing(
    root: Path, tmp_path: Path, breakage: str
) -> None:
    victim = root / "images" / "Clean" / RED / "0001.jpg"
    victim.unlink()
    if breakage == "dangling":
        victim.symlink_to(root / "nowhere.jpg")
    elif breakage == "folder":
        victim.mkdir()
    elif breakage == "empty":
        victim.write_bytes(b"")
    result = export(root, tmp_path / "out")
    assert_refused(result, victim, "1 of 12 files to export cannot be read")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "download"]  # no out, no staging folder


def test_export_to_a_file_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    assert_refused(export(root, tmp_path / "out"), tmp_path / "out", "not a folder")


def test_export_of_a_hostile_name_is_refused(root: Path, tmp_path: Path) -> None:
    result = cli(
        "export", "../gts/Clean", "--style", "eval-co-sod", "--out", tmp_path / "out", "--data-root", root
    )
    assert_refused(result, "'../gts/Clean'")
    assert not (tmp_path / "out").exists()


def test_export_onto_a_full_disk_leaves_the_previous_export(
    root: Path, tmp_path: Path, full_disk: Path
) -> None:
    out = full_disk / "out"
    (out / "gt").mkdir(parents=True)
    (out / "gt" / "note.txt").write_text("earlier")
    before = snapshot(out)
    fill(full_disk)
    result = cli(
        "export", "Clean", "--style", "eval-co-sod", "--out", out, "--data-root", root, "--link", "copy"
    )
    assert_refused(result, full_disk, "the disk is full")
    assert snapshot(out) == before
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "out"]  # staging removed


# --- datasets -----------------------------------------------------------------------------------------


def test_datasets_table_survives_an_unreadable_manifest(root: Path) -> None:
    (root / "manifests" / "Clean.report.json").unlink()
    manifest = root / "manifests" / "Clean.csv"
    manifest.write_bytes(b"\xff\xfe" + manifest.read_bytes())
    result = cli("datasets", "--data-root", root)
    assert_no_traceback(result)
    assert result.returncode == 0
    assert "unreadable manifest (not UTF-8 text (byte 0" in result.stdout


# --- build-coco-seg -------------------------------------------------------------------------------------


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco")


def build(coco: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("build-coco-seg", "--coco", coco, "--data-root", root, "--min-group-size", "2",
               "--workers", "1", "--no-progress", "--splits", "train", *extra)  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [("empty", "is empty (0 bytes)"), ("dangling", "broken symbolic link"), ("folder", "is a folder"),
     ("deleted", "no such file")],
)  # fmt: skip
def test_unusable_coco_jpeg_is_refused_before_anything_is_written(
    coco: Path, tmp_path: Path, breakage: str, problem: str
) -> None:
    victim = coco / "train2017" / "000000000005.jpg"
    victim.unlink()
    if breakage == "empty":
        victim.write_bytes(b"")
    elif breakage == "dangling":
        victim.symlink_to(tmp_path / "gone.jpg")
    elif breakage == "folder":
        victim.mkdir()
    line = assert_refused(build(coco, tmp_path / "data"), victim, problem)
    assert (
        "1 image(s) of 4 in the COCO-SEG groups are missing or unusable" in line and "--skip-missing" in line
    )
    assert not (tmp_path / "data" / "gts").exists() and not (tmp_path / "data" / "images").exists()


def test_skip_missing_builds_the_rest_and_counts(coco: Path, tmp_path: Path) -> None:
    (coco / "train2017" / "000000000005.jpg").write_bytes(b"")
    result = build(coco, tmp_path / "data", "--skip-missing")
    assert result.returncode == 0, result.stderr
    assert "masks for 4 of 6 pairs" in result.stdout and "missing images: 1" in result.stdout
    report = json.loads((tmp_path / "data" / "manifests" / "COCO-SEG.report.json").read_text())
    assert report["missing_problems"] == {"train2017/000000000005.jpg": "is empty (0 bytes)"}
    placed = list((tmp_path / "data" / "images" / "COCO-SEG").rglob("*.jpg"))
    assert len(placed) == 4 and all(p.stat().st_size > 0 for p in placed)


def test_a_placed_image_whose_source_broke_is_removed_on_rerun(coco: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    assert build(coco, root, "--link", "symlink").returncode == 0
    (coco / "train2017" / "000000000005.jpg").unlink()
    result = build(coco, root, "--link", "symlink", "--skip-missing")
    assert result.returncode == 0, result.stderr
    assert not [p for p in (root / "images" / "COCO-SEG").rglob("000000000005.jpg")]
    assert not [p for p in (root / "gts" / "COCO-SEG").rglob("000000000005.png")]


def test_zero_groups_is_an_error_not_an_empty_build(coco: Path, tmp_path: Path) -> None:
    result = cli("build-coco-seg", "--coco", coco, "--data-root", tmp_path / "data", "--no-progress",
                 "--splits", "train", "--workers", "1")  # fmt: skip
    assert_refused(result, coco / "annotations" / "instances_train2017.json", "selects 0 pairs in 0 groups")
    assert not (tmp_path / "data" / "manifests" / "COCO-SEG.csv").exists()
    dry = cli(
        "build-coco-seg",
        "--coco",
        coco,
        "--data-root",
        tmp_path / "data",
        "--dry-run",
        "--splits",
        "train",
        "--no-progress",
    )
    assert_refused(dry, "instances_train2017.json", "would be empty")


def test_all_images_missing_is_an_error_even_when_skipping(coco: Path, tmp_path: Path) -> None:
    shutil.rmtree(coco / "train2017")
    result = build(coco, tmp_path / "data", "--skip-missing")
    assert_refused(result, "train2017", "4 image(s) of 4 in the COCO-SEG groups are missing or unusable")
    assert not (tmp_path / "data" / "gts").exists()


def test_non_utf8_annotation_file_names_the_byte(coco: Path, tmp_path: Path) -> None:
    annotations = coco / "annotations" / "instances_train2017.json"
    data = annotations.read_bytes()
    annotations.write_bytes(data[:30] + b"\xff\xfe" + data[30:])
    assert_refused(build(coco, tmp_path / "data"), annotations, "not UTF-8 text at byte 30")


def test_annotation_file_that_is_a_folder_is_one_line(coco: Path, tmp_path: Path) -> None:
    annotations = coco / "annotations" / "instances_train2017.json"
    annotations.unlink()
    annotations.mkdir()
    assert_refused(build(coco, tmp_path / "data"), annotations, "cannot read the annotation file")


def test_coco_data_root_that_is_a_file_is_refused(coco: Path, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    assert_refused(build(coco, tmp_path / "data"), tmp_path / "data", "not a folder")


def test_coco_build_onto_a_full_disk_is_one_line_and_resumable(coco: Path, full_disk: Path) -> None:
    fill(full_disk)
    result = build(coco, full_disk / "data", "--link", "symlink")
    assert_refused(result, full_disk, "the disk is full")
    assert not (full_disk / "data" / "manifests" / "COCO-SEG.csv").exists()
    (full_disk / "filler").unlink()
    again = build(coco, full_disk / "data", "--link", "symlink")
    assert again.returncode == 0, again.stderr
    assert len(list((full_disk / "data" / "gts" / "COCO-SEG").rglob("*.png"))) == 6


def test_a_second_concurrent_build_is_refused(coco: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    lock = lock_path(root, "COCO-SEG")
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = build(coco, root)
    assert_refused(result, lock, "another process is writing COCO-SEG")
    assert not (root / "gts").exists()


# --- paths that are not what they should be ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "absent"])
def test_src_that_is_not_a_folder_is_one_line(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "download.zip"
    if kind == "file":
        src.write_bytes(b"PK")
    problem = "is not a folder" if kind == "file" else "source folder does not exist"
    assert_refused(standardize(src, tmp_path / "data"), src, problem)
    assert not (tmp_path / "data").exists()


def test_coco_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "coco.zip").write_bytes(b"PK")
    assert_refused(build(tmp_path / "coco.zip", tmp_path / "data"), tmp_path / "coco.zip", "is not a folder")


def test_export_into_a_read_only_folder_is_one_line(root: Path, read_only_dir: Path) -> None:
    assert_refused(export(root, read_only_dir / "out"), read_only_dir, "read-only")


def test_coco_build_into_a_read_only_folder_is_one_line(coco: Path, read_only_dir: Path) -> None:
    assert_refused(build(coco, read_only_dir / "data"), read_only_dir, "read-only")
