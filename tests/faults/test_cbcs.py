"""Faults in ``predict cbcs`` inputs and outputs: an unreadable image is never skipped silently."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench.datasets.standardize import standardize_dataset
from tests.faults.conftest import assert_no_traceback, assert_refused, cli, snapshot
from tests.faults.test_datasets import fill
from tests.test_standardize_fakes import make_clean

RED = "red disc"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A canonical data root holding ``Clean`` (2 groups of 3 images)."""
    data_root = tmp_path / "data"
    standardize_dataset("Clean", make_clean(tmp_path / "download").src, data_root, progress=False)
    return data_root


def predict(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("predict", "cbcs", "--dataset", "Clean", "--data-root", root, "--out", out, *extra)


def maps(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))


def break_image(image: Path, how: str) -> None:
    image.unlink()
    if how == "dangling":
        image.symlink_to(image.parent / "moved-away.jpg")
    elif how == "folder":
        image.mkdir()
    elif how == "empty":
        image.write_bytes(b"")
    elif how == "corrupt":
        image.write_bytes(b"\xff\xd8 not really a JPEG")


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("dangling", "broken symbolic link"),
        ("folder", "is a folder, not a file"),
        ("empty", "is empty (0 bytes)"),
    ],
)
def test_unreadable_image_is_refused_before_any_map(
    root: Path, tmp_path: Path, how: str, problem: str
) -> None:
    victim = root / "images" / "Clean" / RED / "0001.jpg"
    break_image(victim, how)
    line = assert_refused(predict(root, tmp_path / "preds"), victim, problem)
    assert "1 of 6 images cannot be read" in line and "--skip-unreadable" in line
    assert not (tmp_path / "preds").exists()


def test_corrupt_image_is_one_line(root: Path, tmp_path: Path) -> None:
    victim = root / "images" / "Clean" / RED / "0001.jpg"
    break_image(victim, "corrupt")
    assert_refused(predict(root, tmp_path / "preds"), victim, "not a readable image")
    assert not [m for m in maps(tmp_path / "preds") if m.startswith(f"cbcs/Clean/{RED}/")]


@pytest.mark.parametrize("how", ["dangling", "corrupt"])
def test_skip_unreadable_predicts_the_rest_and_counts(root: Path, tmp_path: Path, how: str) -> None:
    break_image(root / "images" / "Clean" / RED / "0001.jpg", how)
    result = predict(root, tmp_path / "preds", "--skip-unreadable")
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "cbcs: Clean: 5 of 6 maps" in result.stderr and "1 unreadable image(s) skipped" in result.stderr
    assert len(maps(tmp_path / "preds")) == 5
    assert f"cbcs/Clean/{RED}/0001.png" not in maps(tmp_path / "preds")


def test_all_images_dangling_is_an_error_even_when_skipping(root: Path, tmp_path: Path) -> None:
    for image in (root / "images" / "Clean").rglob("*.jpg"):
        break_image(image, "dangling")
    result = predict(root, tmp_path / "preds", "--skip-unreadable")
    assert_refused(result, root / "images" / "Clean", "none of the 6 images can be read")
    assert maps(tmp_path / "preds") == []


def test_a_group_with_only_broken_links_is_not_taken_as_finished(root: Path, tmp_path: Path) -> None:
    for image in (root / "images" / "Clean" / RED).iterdir():
        break_image(image, "dangling")
    assert_refused(predict(root, tmp_path / "preds"), RED, "3 of 6 images cannot be read")


def test_two_images_with_one_stem_are_refused(root: Path, tmp_path: Path) -> None:
    group = root / "images" / "Clean" / RED
    cv2.imwrite(str(group / "0001.png"), np.full((24, 32, 3), 60, np.uint8))
    assert_refused(predict(root, tmp_path / "preds"), group / "0001.png", "shares its stem with 0001.jpg")
    assert not (tmp_path / "preds").exists()


def test_out_that_is_a_file_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "preds").write_text("a file")
    assert_refused(predict(root, tmp_path / "preds"), tmp_path / "preds", "not a folder")


@pytest.mark.parametrize(("option", "value"), [("--method", "../escape"), ("--dataset", "../images/Clean")])
def test_hostile_names_are_refused(root: Path, tmp_path: Path, option: str, value: str) -> None:
    args = ["predict", "cbcs", "--data-root", root, "--out", tmp_path / "preds", option, value]
    if option == "--method":
        args += ["--dataset", "Clean"]
    assert_refused(cli(*args), f"'{value}'")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "preds").exists()


def test_full_disk_is_one_line_and_a_rerun_resumes(root: Path, tmp_path: Path, full_disk: Path) -> None:
    out = full_disk / "preds"
    fill(full_disk)
    assert_refused(predict(root, out), full_disk, "the disk is full")
    assert not [p for p in full_disk.rglob("*") if ".tmp" in p.name]
    (full_disk / "filler").unlink()
    done = predict(root, out)
    assert done.returncode == 0, done.stderr
    assert len(maps(out)) == 6
    before = snapshot(out)
    again = predict(root, out)
    assert "6 of 6 maps (0 written" in again.stderr and snapshot(out) == before


def test_read_only_out_is_one_line(root: Path, full_disk: Path) -> None:
    if subprocess.run(["mount", "-o", "remount,ro", str(full_disk)], capture_output=True).returncode:
        pytest.skip("cannot remount the tmpfs read-only here")
    assert_refused(predict(root, full_disk / "preds"), full_disk, "read-only")
