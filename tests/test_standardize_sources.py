"""standardize on fake downloads of every public set: every output file, manifest row and report field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cosalbench import layout
from cosalbench.datasets import registry
from cosalbench.datasets.standardize import standardize_dataset
from cosalbench.errors import CosalbenchError
from tests.test_standardize_fakes import GREY_LEVELS, HEIGHT, MAKERS, WIDTH, check_outputs, check_report


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_standardize_each_public_layout(tmp_path: Path, name: str) -> None:
    fake = MAKERS[name](tmp_path / "src")
    root = tmp_path / "data"
    report, stats = standardize_dataset(name.lower(), fake.src, root, progress=False)
    info = registry.lookup(name)
    check_outputs(fake, root)
    check_report(fake, report, info)
    assert report["source"]["root"] == str(fake.src.resolve())
    assert json.loads(layout.report_path(root, name).read_text()) == report
    written = len(fake.pairs)
    assert (stats.images_written, stats.masks_written, stats.unchanged, stats.removed) == (
        written,
        written,
        0,
        0,
    )
    # the fakes are smaller than the real sets, so the count check always warns
    assert report["exit_code"] == 3 and report["warnings"][0].startswith(f"found {written} images")


def test_coca_quirks_by_hand(tmp_path: Path) -> None:
    """The facts check_report derives, spelled out for CoCA."""
    fake = MAKERS["CoCA"](tmp_path)
    report, _ = standardize_dataset("CoCA", fake.src, tmp_path / "data", progress=False)
    assert report["source"]["layout"] == "image/binary"
    assert report["duplicate_stems"] == {"691609": ["Yellow duck", "alarm clock"]}
    assert sorted(report["system_files_skipped"]) == [
        "CoCA/binary/Accordion/._51499.png",
        "CoCA/image/.DS_Store",
        "CoCA/image/Accordion/Thumbs.db",
        "CoCA/image/__MACOSX",
    ]
    assert report["images_without_masks"] == ["CoCA/image/Yellow duck/999.jpg"]
    assert report["masks_without_images"] == ["CoCA/binary/alarm clock/555.png"]
    assert report["empty_masks"] == ["Yellow duck/8"]
    # grey levels 0 1 100 127 128 129 130 200 254 255 repeat along each row: > 128 is foreground
    levels = np.resize(GREY_LEVELS, (HEIGHT, WIDTH))
    with Image.open(tmp_path / "data/gts/CoCA/alarm clock/691609.png") as mask:
        np.testing.assert_array_equal(np.asarray(mask), np.where(levels >= 129, 255, 0))
    changed = int(np.isin(levels, [0, 255], invert=True).sum())
    assert {"item": "alarm clock/691609", "pixels_changed": changed} in report["non_binary_masks"]
    assert (tmp_path / "data/images/CoCA/Accordion/186605.jpg").is_file()  # from 186605.JPG


def test_cosod3k_cmyk_size_mismatch_and_label_map(tmp_path: Path) -> None:
    fake = MAKERS["CoSOD3k"](tmp_path)
    report, _ = standardize_dataset("CoSOD3k", fake.src, tmp_path / "data", progress=False)
    assert report["converted_images"] == [{"item": "axe/ILSVRC2012_val_00001391", "from": "JPEG/CMYK"}]
    assert report["size_mismatches"] == [{"item": "banana/b3", "image": "32x24", "mask": "24x32"}]
    with Image.open(tmp_path / "data/gts/CoSOD3k/banana/b3.png") as mask:
        assert mask.size == (24, 32)  # kept at its own size, never resized
    assert report["faint_masks"] == ["banana/b4"]
    assert any("0/1 label maps" in w for w in report["warnings"])


@pytest.mark.parametrize("link", ["symlink", "copy"])
def test_link_modes(tmp_path: Path, link: str) -> None:
    fake = MAKERS["CoSal2015"](tmp_path)
    standardize_dataset("Cosal2015", fake.src, tmp_path / "data", link=link, progress=False)
    check_outputs(fake, tmp_path / "data", link=link)


def test_explicit_subfolders(tmp_path: Path) -> None:
    fake = MAKERS["DUTS_class"](tmp_path)
    (fake.src / "img").rename(fake.src / "pictures")
    (fake.src / "gt").rename(fake.src / "labels")
    fake.pairs = {
        (group, stem): (
            fake.src / "pictures" / group / image.name,
            fake.src / "labels" / group / mask.name,
        )
        for (group, stem), (image, mask) in fake.pairs.items()
    }
    fake.ungrouped = ["pictures/cover.jpg"]
    fake.system_files = ["pictures/.ipynb_checkpoints"]
    with pytest.raises(CosalbenchError, match="no image/mask folders"):
        standardize_dataset("DUTS_class", fake.src, tmp_path / "data", progress=False)
    report, _ = standardize_dataset(
        "DUTS_class", fake.src, tmp_path / "data", images="pictures", masks="labels", progress=False
    )
    assert report["source"]["layout"] == "custom"
    check_outputs(fake, tmp_path / "data")
    check_report(fake, report, registry.lookup("DUTS_class"))


def test_ambiguous_layout_is_refused(tmp_path: Path) -> None:
    fake = MAKERS["COCO9213"](tmp_path)
    dataset_dir = fake.src / "COCO9213-os"
    (dataset_dir / "img_bilinear_224" / "bear").mkdir(parents=True)
    (dataset_dir / "gt_bilinear_224" / "bear").mkdir(parents=True)
    with pytest.raises(Exception, match="several image/mask folder pairs") as error:
        standardize_dataset("coco-9k", fake.src, tmp_path / "data", progress=False)
    assert "img/gt" in str(error.value) and "--images" in str(error.value)


def test_nothing_pairable_is_unusable(tmp_path: Path) -> None:
    fake = MAKERS["iCoseg"](tmp_path)
    for _, mask in fake.pairs.values():
        mask.rename(mask.with_name("gt_" + mask.name))
    report, _ = standardize_dataset("iCoseg", fake.src, tmp_path / "data", progress=False)
    assert (report["status"], report["exit_code"]) == ("unusable", 2)
    assert len(report["images_without_masks"]) == len(report["masks_without_images"]) == 4
    assert not layout.manifest_path(tmp_path / "data", "iCoseg").exists()
    assert layout.report_path(tmp_path / "data", "iCoseg").is_file()


def test_probing_never_takes_another_datasets_folder(tmp_path: Path) -> None:
    fake = MAKERS["CoCA"](tmp_path)  # fake.src holds only CoCA/
    with pytest.raises(CosalbenchError, match="no image/mask folders of MSRC"):
        standardize_dataset("MSRC", fake.src, tmp_path / "data", progress=False)
    (fake.src / "CoCA").rename(fake.src / "CoCA-v1.0")  # the only folder: taken whatever its name
    report, _ = standardize_dataset("CoCA", fake.src, tmp_path / "data", progress=False)
    assert report["source"]["images"] == str((fake.src / "CoCA-v1.0" / "image").resolve())
