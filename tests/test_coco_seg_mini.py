"""``build-coco-seg`` end to end on the real COCO2017 subset in ../shared/data/coco-mini."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cosalbench.cli import main
from cosalbench.datasets.coco_seg import MANIFEST_COLUMNS
from tests.test_coco_seg_rule import reference_mask

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools


def build(coco: Path, root: Path, *extra: str) -> None:
    main(["build-coco-seg", "--coco", str(coco), "--data-root", str(root), "--min-group-size", "1",
          "--no-progress", *extra])  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_membership(document: dict, kept: set[int] | None = None) -> dict[int, set[int]]:
    """The reference rule written out plainly: category -> images with a non-crowd area > 4000."""
    members: dict[int, set[int]] = defaultdict(set)
    for ann in document["annotations"]:
        if not ann["iscrowd"] and ann["area"] > 4000:
            members[ann["category_id"]].add(ann["image_id"])
    return {c: ids for c, ids in members.items() if kept is None or c in kept}


@pytest.fixture(scope="module")
def mini(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The COCO subset and a data root holding its full build (2 workers)."""
    coco = shared_dir / "data" / "coco-mini"
    root = tmp_path_factory.mktemp("coco-seg")
    build(coco, root, "--workers", "2")
    return coco, root


def test_masks_match_independent_rasterisation(mini: tuple[Path, Path]) -> None:
    coco, root = mini
    with Image.open(next((root / "gts" / "COCO-SEG").rglob("*.png"))) as png:
        assert png.mode == "L"
    for split, dataset in (("train", "COCO-SEG"), ("val", "COCO-SEG-val")):
        document = json.loads((coco / "annotations" / f"instances_{split}2017.json").read_text())
        images = {im["id"]: im for im in document["images"]}
        anns: dict[tuple[int, int], list] = defaultdict(list)
        for ann in document["annotations"]:
            anns[(ann["image_id"], ann["category_id"])].append(ann)
        rows = read_rows(root / "manifests" / f"{dataset}.csv")
        assert rows and list(rows[0]) == list(MANIFEST_COLUMNS)
        for row in rows:
            image = images[int(row["image_id"])]
            mine = anns[(image["id"], int(row["category_id"]))]
            expected = reference_mask([a["segmentation"] for a in mine], image["height"], image["width"])
            mask = cv2.imread(
                str(root / "gts" / dataset / row["group"] / f"{row['stem']}.png"), cv2.IMREAD_UNCHANGED
            )
            assert mask.shape == expected.shape and np.array_equal(mask, expected), (
                dataset,
                row["group"],
                row["stem"],
            )
            assert set(np.unique(mask)) <= {0, 255}
            assert int(row["mask_pixels"]) == np.count_nonzero(mask)
            assert (int(row["width"]), int(row["height"])) == (image["width"], image["height"])
            assert int(row["n_instances"]) == len(mine)
            assert int(row["n_crowd"]) == sum(a["iscrowd"] for a in mine)
            assert float(row["max_instance_area"]) == max(a["area"] for a in mine if not a["iscrowd"])
            source = coco / f"{split}2017" / image["file_name"]
            placed = root / "images" / dataset / row["group"] / f"{row['stem']}.jpg"
            assert placed.read_bytes() == source.read_bytes()
            if os.stat(source).st_dev == os.stat(placed).st_dev:
                assert os.path.samefile(source, placed)  # a hard link, not a copy


def test_groups_categories_and_digest(mini: tuple[Path, Path]) -> None:
    coco, root = mini
    train = json.loads((coco / "annotations" / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in train["categories"]}
    members = expected_membership(train)
    rows = read_rows(root / "manifests" / "COCO-SEG.csv")
    assert {(int(r["category_id"]), int(r["image_id"])) for r in rows} == {
        (c, i) for c, ids in members.items() for i in ids
    }
    for row in rows:
        image_id = int(row["image_id"])
        expected = [names[c] for c in sorted(members) if image_id in members[c]]
        assert row["categories"].split(";") == expected
        assert row["group"] == names[int(row["category_id"])]
    lines = sorted((c, i) for c, ids in members.items() for i in ids)
    digest = hashlib.sha256("".join(f"{c},{i}\n" for c, i in lines).encode()).hexdigest()
    report = json.loads((root / "manifests" / "COCO-SEG.report.json").read_text())
    assert report["pairs_sha256"] == digest
    assert report["matches_published"] is False and "subset cannot match" in report["verification"]
    assert report["n_groups"] == len(members) and report["n_pairs"] == len(lines)
    assert report["parameters"]["min_group_size"] == 1 and report["reference_rule"] is False
    for name, group in report["groups"].items():
        fractions = [
            int(r["mask_pixels"]) / (int(r["width"]) * int(r["height"])) for r in rows if r["group"] == name
        ]
        assert group["images"] == len(fractions)
        assert group["mean_mask_fraction"] == pytest.approx(np.mean(fractions))
    val = json.loads((coco / "annotations" / "instances_val2017.json").read_text())
    val_rows = read_rows(root / "manifests" / "COCO-SEG-val.csv")
    val_members = expected_membership(val, kept=set(members))
    assert {(int(r["category_id"]), int(r["image_id"])) for r in val_rows} == {
        (c, i) for c, ids in val_members.items() for i in ids
    }


def test_dry_run_without_images_gives_the_same_pairs(mini: tuple[Path, Path], tmp_path: Path) -> None:
    coco, root = mini
    annotations_only = tmp_path / "coco"
    shutil.copytree(coco / "annotations", annotations_only / "annotations")
    build(annotations_only, tmp_path / "dry", "--dry-run")
    dry = read_rows(tmp_path / "dry" / "manifests" / "COCO-SEG.csv")
    full = read_rows(root / "manifests" / "COCO-SEG.csv")
    assert [{k: v for k, v in r.items() if k != "mask_pixels"} for r in dry] == [
        {k: v for k, v in r.items() if k != "mask_pixels"} for r in full
    ]
    assert {r["mask_pixels"] for r in dry} == {""}
    assert not (tmp_path / "dry" / "gts").exists()


def test_rerun_is_idempotent_and_other_parameters_refused(
    mini: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    coco, root = mini
    manifest = (root / "manifests" / "COCO-SEG.csv").read_bytes()
    pngs = sorted((root / "gts").rglob("*.png"))
    mtimes = [p.stat().st_mtime_ns for p in pngs]
    capsys.readouterr()
    build(coco, root, "--workers", "1")
    assert "0 written" in capsys.readouterr().out
    assert (root / "manifests" / "COCO-SEG.csv").read_bytes() == manifest
    assert [p.stat().st_mtime_ns for p in sorted((root / "gts").rglob("*.png"))] == mtimes
    with pytest.raises(SystemExit) as exit_info:
        build(coco, root, "--min-area", "3000")
    assert exit_info.value.code == 2
    assert "holds a different COCO-SEG build" in capsys.readouterr().err
    assert (root / "manifests" / "COCO-SEG.csv").read_bytes() == manifest
