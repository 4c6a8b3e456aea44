"""standardize reruns: no-op on an unchanged source, resume after interruption, --overwrite, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cosalbench import layout
from cosalbench.datasets.locking import lock_path
from cosalbench.datasets.standardize import standardize_dataset
from cosalbench.errors import CosalbenchError
from tests.test_standardize_fakes import Fake, add_pair, check_outputs, check_report, make_clean, picture


def mtimes(root: Path) -> dict[str, int]:
    """lstat mtime of every file under ``root`` (outputs, manifest and report; not the lock file)."""
    return {
        p.relative_to(root).as_posix(): p.lstat().st_mtime_ns
        for p in sorted(root.rglob("*"))
        if not p.is_dir() and p.name != lock_path(root, "Clean").name
    }


@pytest.fixture
def clean(tmp_path: Path) -> tuple[Fake, Path]:
    fake = make_clean(tmp_path / "src")
    root = tmp_path / "data"
    report, _ = standardize_dataset("Clean", fake.src, root, progress=False)
    assert (report["status"], report["exit_code"], report["warnings"]) == ("complete", 0, [])
    return fake, root


def test_rerun_on_the_same_source_writes_nothing(clean: tuple[Fake, Path]) -> None:
    fake, root = clean
    before = mtimes(root)
    assert len(before) == 2 * len(fake.pairs) + 2
    report, stats = standardize_dataset("Clean", fake.src, root, progress=False)
    assert (stats.images_written, stats.masks_written, stats.removed) == (0, 0, 0)
    assert stats.unchanged == len(fake.pairs)
    assert mtimes(root) == before
    check_report(fake, report, None)


def test_resume_after_deleted_outputs_and_a_leftover_temp_file(clean: tuple[Fake, Path]) -> None:
    fake, root = clean
    manifest_text = layout.manifest_path(root, "Clean").read_text()
    (root / "images/Clean/red disc/0001.jpg").unlink()
    (root / "gts/Clean/blue square/0002.png").unlink()
    (root / "gts/Clean/red disc/0000.tmp.png").write_bytes(b"half a png")
    before = mtimes(root)
    _, stats = standardize_dataset("Clean", fake.src, root, progress=False)
    assert (stats.images_written, stats.masks_written, stats.removed) == (1, 1, 1)
    after = mtimes(root)
    assert {k: v for k, v in after.items() if k in before} == {
        k: v for k, v in before.items() if not k.endswith(".tmp.png")
    }
    check_outputs(fake, root)
    assert layout.manifest_path(root, "Clean").read_text() == manifest_text


def test_resume_after_an_interruption_before_the_manifest(clean: tuple[Fake, Path]) -> None:
    """A run cut short leaves per-file outputs but no manifest/report: the rerun keeps them."""
    fake, root = clean
    manifest_text = layout.manifest_path(root, "Clean").read_text()
    layout.manifest_path(root, "Clean").unlink()
    layout.report_path(root, "Clean").unlink()
    (root / "gts/Clean/red disc/0002.png").unlink()
    (root / "images/Clean/red disc/0002.tmp.jpg").write_bytes(b"partial")
    before = {k: v for k, v in mtimes(root).items() if ".tmp." not in k}
    _, stats = standardize_dataset("Clean", fake.src, root, progress=False)
    assert (stats.images_written, stats.masks_written, stats.removed) == (0, 1, 1)
    assert {k: v for k, v in mtimes(root).items() if k in before} == before
    check_outputs(fake, root)
    assert layout.manifest_path(root, "Clean").read_text() == manifest_text


def test_changed_source_needs_overwrite_which_replaces_only_what_changed(clean: tuple[Fake, Path]) -> None:
    fake, root = clean
    image_dir, mask_dir = fake.src / "Image", fake.src / "GroundTruth"
    changed_image = fake.pairs[("red disc", "0001")][0]
    changed_image.unlink()  # a new file, so the hard link in the data root keeps the old bytes
    Image.fromarray(picture(999)).save(changed_image, "JPEG")
    for path in fake.pairs.pop(("blue square", "0000")):
        path.unlink()
    add_pair(fake, image_dir, mask_dir, "green star", "0000", 77)
    before = mtimes(root)
    with pytest.raises(CosalbenchError, match=r"source changed .*1 pair\(s\) changed, 1 gone"):
        standardize_dataset("Clean", fake.src, root, progress=False)
    assert mtimes(root) == before
    report, stats = standardize_dataset("Clean", fake.src, root, overwrite=True, progress=False)
    assert (stats.images_written, stats.masks_written, stats.removed) == (2, 1, 2)
    check_outputs(fake, root)
    check_report(fake, report, None)
    after = mtimes(root)
    untouched = {
        k for k in before if "0001" not in k and "blue square/0000" not in k and "manifests" not in k
    }
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    assert not (root / "images/Clean/blue square/0000.jpg").exists()
    assert not (root / "gts/Clean/blue square/0000.png").exists()


def test_overwrite_repairs_a_modified_output(clean: tuple[Fake, Path]) -> None:
    fake, root = clean
    target = root / "gts/Clean/red disc/0000.png"
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(target)
    _, stats = standardize_dataset("Clean", fake.src, root, progress=False)
    assert stats.masks_written == 0  # trusted without --overwrite (validate reports it)
    _, stats = standardize_dataset("Clean", fake.src, root, overwrite=True, progress=False)
    assert (stats.images_written, stats.masks_written) == (0, 1)
    check_outputs(fake, root)


def test_another_source_is_refused_without_overwrite(clean: tuple[Fake, Path], tmp_path: Path) -> None:
    fake, root = clean
    other = make_clean(tmp_path / "elsewhere")
    before = mtimes(root)
    with pytest.raises(CosalbenchError, match="holds a standardization of Clean from") as error:
        standardize_dataset("Clean", other.src, root, progress=False)
    assert "--overwrite" in str(error.value)
    assert mtimes(root) == before
    report, stats = standardize_dataset("Clean", other.src, root, overwrite=True, progress=False)
    # same bytes from another place: nothing rewritten, the manifest now points at the new source
    assert (stats.images_written, stats.masks_written) == (0, 0)
    assert report["source"]["root"] == str(other.src.resolve())
    check_outputs(other, root, link=None)


def test_symlinks_follow_a_moved_source(tmp_path: Path) -> None:
    fake = make_clean(tmp_path / "src")
    root = tmp_path / "data"
    standardize_dataset("Clean", fake.src, root, link="symlink", progress=False)
    moved = make_clean(tmp_path / "moved")
    _, stats = standardize_dataset("Clean", moved.src, root, link="symlink", overwrite=True, progress=False)
    assert (stats.images_written, stats.masks_written) == (len(fake.pairs), 0)
    check_outputs(moved, root, link="symlink")


def test_foreign_files_without_a_manifest_are_refused(tmp_path: Path) -> None:
    fake = make_clean(tmp_path / "src")
    root = tmp_path / "data"
    stranger = root / "gts/Clean/red disc/9999.png"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"not ours")
    with pytest.raises(CosalbenchError, match="not from this source"):
        standardize_dataset("Clean", fake.src, root, progress=False)
    assert not (root / "images").exists()
    standardize_dataset("Clean", fake.src, root, overwrite=True, progress=False)
    assert not stranger.exists()
    check_outputs(fake, root)


def test_differing_output_of_an_unrecorded_pair_is_not_overwritten(tmp_path: Path) -> None:
    fake = make_clean(tmp_path / "src")
    root = tmp_path / "data"
    squatter = root / "gts/Clean/blue square/0001.png"
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"someone else's mask")
    with pytest.raises(CosalbenchError, match="different content"):
        standardize_dataset("Clean", fake.src, root, progress=False)
    assert squatter.read_bytes() == b"someone else's mask"
    assert os.path.exists(root / "gts/Clean/blue square/0000.png")  # earlier pairs were written


def test_changing_the_link_mode_relinks_kept_jpegs(clean: tuple[Fake, Path]) -> None:
    fake, root = clean
    _, stats = standardize_dataset("Clean", fake.src, root, link="symlink", progress=False)
    assert (stats.images_written, stats.masks_written) == (len(fake.pairs), 0)
    check_outputs(fake, root, link="symlink")
