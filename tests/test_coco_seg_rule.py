"""COCO-SEG rule, masks, digest and bad input on small hand-made COCO files."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cosalbench.cli import main
from cosalbench.datasets import coco_seg
from cosalbench.datasets.coco_masks import decode_mask, rle_pixels, union_rle
from cosalbench.errors import CosalbenchError

H, W = 60, 80  # every hand-made image
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools


def reference_mask(segmentations: list[Any], height: int, width: int) -> np.ndarray:
    """Independent union: decode each annotation (each polygon part) on its own, OR them in numpy."""
    union = np.zeros((height, width), dtype=bool)
    for segmentation in segmentations:
        if isinstance(segmentation, list):
            for part in segmentation:
                rle = mask_utils.frPyObjects([part], height, width)[0]
                union |= mask_utils.decode(rle).astype(bool)
        elif isinstance(segmentation["counts"], list):
            union |= mask_utils.decode(mask_utils.frPyObjects(segmentation, height, width)).astype(bool)
        else:
            union |= mask_utils.decode(segmentation).astype(bool)
    return union.astype(np.uint8) * 255


def rect(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """A rectangle as a COCO polygon part."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def box_rle_counts(x0: int, y0: int, x1: int, y1: int) -> list[int]:
    """Uncompressed (column-major) RLE counts of the box [x0, x1) x [y0, y1) in an H x W image."""
    counts = [x0 * H + y0]
    for column in range(x0, x1):
        counts.append(y1 - y0)
        counts.append(H - (y1 - y0) if column < x1 - 1 else H - y1 + (W - x1) * H)
    return counts


def compressed_box(x0: int, y0: int, x1: int, y1: int) -> dict[str, Any]:
    """A compressed RLE (counts as a string, as in JSON) of a box."""
    mask = np.zeros((H, W), dtype=np.uint8, order="F")
    mask[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(mask)
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


CATEGORIES = [
    {"id": 1, "name": "person"},
    {"id": 10, "name": "traffic light"},
    {"id": 89, "name": "hair drier"},
    {"id": 72, "name": "tv"},
]


def ann(ann_id: int, image_id: int, category_id: int, area: float, segmentation: Any, crowd: int = 0) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "area": area,
        "iscrowd": crowd,
        "segmentation": segmentation,
        "bbox": [0, 0, 1, 1],
    }


def train_document() -> dict[str, Any]:
    """Images 1-7 of train.

    person: 1 (area exactly 4000: out), 2 (4000.5: in; two-part polygon + a small instance + a
    crowd RLE), 3 (crowd only: out), 4 (in, compressed RLE), 5 (in).
    traffic light: 2 (in), 5 (in), 6 (in).  hair drier: 7 (in, but the group has 1 image: cut).
    tv: 6 (area 3000: out under the default rule; 3000 + 2000 summed is above 4000).
    """
    annotations = [
        ann(1, 1, 1, 4000, [rect(5, 5, 40, 40)]),
        ann(2, 2, 1, 4000.5, [rect(2, 2, 20, 20), rect(50, 30, 70, 55)]),
        ann(3, 2, 1, 50, [rect(30, 2, 36, 8)]),
        ann(4, 2, 1, 900, {"size": [H, W], "counts": box_rle_counts(10, 40, 40, 58)}, crowd=1),
        ann(5, 3, 1, 90000, {"size": [H, W], "counts": box_rle_counts(0, 0, 30, 30)}, crowd=1),
        ann(6, 4, 1, 5000, compressed_box(20, 10, 70, 50)),
        ann(7, 5, 1, 4800, [rect(0, 0, 80, 60)]),
        ann(8, 2, 10, 7000, [rect(60, 0, 80, 25)]),
        ann(9, 5, 10, 4001, [rect(10, 10, 30, 30)]),
        ann(10, 6, 10, 4100, [rect(10, 10, 50, 50)]),
        ann(11, 7, 89, 9000, [rect(1, 1, 60, 50)]),
        ann(12, 6, 72, 3000, [rect(0, 0, 10, 10)]),
        ann(13, 6, 72, 2000, [rect(60, 40, 70, 50)]),
    ]
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H} for i in range(1, 8)]
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def val_document() -> dict[str, Any]:
    """val: person on 101; hair drier on 102 (qualifies, but the group was cut on train)."""
    annotations = [
        ann(101, 101, 1, 6000, [rect(0, 0, 50, 50)]),
        ann(102, 102, 89, 8000, [rect(0, 0, 60, 50)]),
        ann(103, 102, 1, 4500, [rect(5, 5, 45, 45)]),
    ]
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H} for i in (101, 102)]
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def write_coco(folder: Path, with_images: bool = True) -> Path:
    """A COCO-style folder with both annotation files (and tiny JPEGs unless told otherwise)."""
    for split, document in (("train", train_document()), ("val", val_document())):
        path = folder / "annotations" / f"instances_{split}2017.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
        if with_images:
            (folder / f"{split}2017").mkdir(exist_ok=True)
            for image in document["images"]:
                cv2.imwrite(
                    str(folder / f"{split}2017" / image["file_name"]), np.full((H, W, 3), 90, np.uint8)
                )
    return folder


@pytest.fixture
def coco_dir(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def selection(options: coco_seg.RuleOptions) -> coco_seg.GroupSelection:
    coco = coco_seg.index_annotations(train_document(), Path("train.json"))
    return coco_seg.select_groups(coco, options)


# --- the rule -----------------------------------------------------------------------------------


def test_reference_rule_edge_cases() -> None:
    picked = selection(coco_seg.RuleOptions(min_group_size=2))
    assert picked.pairs == {1: (2, 4, 5), 10: (2, 5, 6)}  # 1: area == 4000; 3: crowd only
    assert picked.dropped == {89: 1}  # hair drier under the size cut
    assert picked.names == {1: "person", 10: "traffic light"}
    assert picked.image_groups == {2: (1, 10), 4: (1,), 5: (1, 10), 6: (10,)}


def test_rule_alternatives_are_opt_in() -> None:
    union = selection(coco_seg.RuleOptions(min_group_size=1, area_rule="union"))
    assert union.pairs[72] == (6,)  # 3000 + 2000 > 4000 only when instances are summed
    field = selection(coco_seg.RuleOptions(min_group_size=1, min_area=1000))
    raster = selection(coco_seg.RuleOptions(min_group_size=1, area_from="mask", min_area=1000))
    # image 2's instances cover < 600 px each although one has `area` 4000.5
    assert field.pairs[1] == (1, 2, 4, 5) and raster.pairs[1] == (1, 4, 5)
    assert not coco_seg.RuleOptions(area_rule="union").is_reference()
    with pytest.raises(CosalbenchError):
        coco_seg.RuleOptions(area_from="bbox")


def test_val_keeps_train_groups_without_size_cut() -> None:
    options = coco_seg.RuleOptions(min_group_size=2)
    train = selection(options)
    val = coco_seg.select_groups(
        coco_seg.index_annotations(val_document(), Path("v.json")), options, train.names
    )
    assert val.pairs == {1: (101, 102), 10: ()}  # hair drier qualifies on val but was cut on train
    assert val.dropped == {}


# --- masks --------------------------------------------------------------------------------------


def test_union_mask_matches_independent_rasterisation() -> None:
    coco = coco_seg.index_annotations(train_document(), Path("t.json"))
    segmentations = [inst.segmentation for inst in coco.instances[(2, 1)]]  # 2-part polygon, small, crowd
    rle = union_rle(segmentations, H, W)
    expected = reference_mask(segmentations, H, W)
    assert np.array_equal(decode_mask(rle, H, W), expected)
    assert rle_pixels(rle) == np.count_nonzero(expected)


def test_many_rles_do_not_overflow() -> None:
    """pycocotools area() overflows on >= 256 RLEs; the union of 300 parts must still count right."""
    parts = [rect(x % 80, (x // 80) * 2, x % 80 + 1, (x // 80) * 2 + 1) for x in range(300)]
    rle = union_rle([parts], H, W)
    assert rle_pixels(rle) == np.count_nonzero(reference_mask([parts], H, W)) > 0


def test_degenerate_polygon_parts_add_nothing() -> None:
    """pycocotools rejects a list starting with a 2-point part; elsewhere such a part covers 0 px."""
    square = rect(10, 10, 30, 30)
    expected = reference_mask([[square]], H, W)
    for parts in ([square, [40, 40, 50, 45]], [[40, 40, 50, 45], square]):
        assert np.array_equal(decode_mask(union_rle([parts], H, W), H, W), expected)
    assert union_rle([[]], H, W) is None and rle_pixels(None) == 0


# --- digest and verification --------------------------------------------------------------------


def test_pairs_digest_is_sha256_of_sorted_numeric_lines() -> None:
    pairs = {10: [100, 9], 2: [77, 1000]}
    text = "2,77\n2,1000\n10,9\n10,100\n"
    assert coco_seg.pairs_sha256(pairs) == hashlib.sha256(text.encode()).hexdigest()
    assert coco_seg.images_sha256([9, 100, 9]) == hashlib.sha256(b"9\n100\n").hexdigest()


def test_published_table_is_consistent() -> None:
    counts = [n for _, _, n in coco_seg.PUBLISHED_GROUPS]
    assert len(counts) == 78 and sum(counts) == coco_seg.PUBLISHED_N_PAIRS == 200_932
    assert {name for _, name, _ in coco_seg.PUBLISHED_GROUPS}.isdisjoint({"toaster", "hair drier"})


def test_verification_messages() -> None:
    picked = selection(coco_seg.RuleOptions(min_group_size=2))
    assert coco_seg.verification_message(True, picked, [], 118_287, True) == (
        "matches the published COCO-SEG list (78 groups, 200,932 pairs)"
    )
    differences = coco_seg.compare_with_published(picked, {1: "person", 10: "traffic light"})
    assert {
        "category_id": 10,
        "group": "traffic light",
        "published": 726,
        "rebuilt": 3,
        "difference": -723,
    } in differences
    assert len(differences) == 78
    text = coco_seg.verification_message(False, picked, differences, 7, True)
    assert "does NOT match" in text and "78 groups differ" in text and "subset cannot match" in text


# --- builds on the hand-made set ------------------------------------------------------------------


def test_build_writes_layout_manifest_and_report(coco_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    reports = coco_seg.build_coco_seg(
        coco_dir, root, options=coco_seg.RuleOptions(min_group_size=2), progress=False
    )
    assert [r["dataset"] for r in reports] == ["COCO-SEG", "COCO-SEG-val"]
    train_rows = read_rows(root / "manifests" / "COCO-SEG.csv")
    assert list(train_rows[0]) == list(coco_seg.MANIFEST_COLUMNS)
    by_key = {(r["group"], r["stem"]): r for r in train_rows}
    assert sorted(by_key) == sorted(
        [("person", f"{i:012d}") for i in (2, 4, 5)] + [("traffic light", f"{i:012d}") for i in (2, 5, 6)]
    )
    row = by_key[("person", "000000000002")]
    assert (row["n_instances"], row["n_crowd"], row["max_instance_area"]) == ("3", "1", "4000.5")
    assert row["categories"] == "person;traffic light"
    assert by_key[("traffic light", "000000000006")]["categories"] == "traffic light"
    train = train_document()
    for (group, stem), row in by_key.items():
        segmentations = [
            a["segmentation"]
            for a in train["annotations"]
            if a["image_id"] == int(stem) and a["category_id"] == int(row["category_id"])
        ]
        mask = cv2.imread(str(root / "gts" / "COCO-SEG" / group / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert np.array_equal(mask, reference_mask(segmentations, H, W)), (group, stem)
        assert int(row["mask_pixels"]) == np.count_nonzero(mask)
        image = root / "images" / "COCO-SEG" / group / f"{stem}.jpg"
        assert os.path.samefile(image, coco_dir / "train2017" / f"{stem}.jpg")  # hard link by default
    val_rows = read_rows(root / "manifests" / "COCO-SEG-val.csv")
    assert [(r["group"], r["image_id"]) for r in val_rows] == [("person", "101"), ("person", "102")]
    report = json.loads((root / "manifests" / "COCO-SEG.report.json").read_text())
    assert report["dropped_groups"] == [{"category_id": 89, "group": "hair drier", "images": 1}]
    assert report["matches_published"] is False and report["parameters"]["min_group_size"] == 2
    assert report["groups_per_image"] == {"1": 2, "2": 2}
    expected_fraction = np.mean(
        [int(by_key[("person", f"{i:012d}")]["mask_pixels"]) / (H * W) for i in (2, 4, 5)]
    )
    assert report["groups"]["person"]["mean_mask_fraction"] == pytest.approx(expected_fraction)
    assert reports[1]["matches_published"] is None and reports[1]["groups"]["traffic light"]["images"] == 0


def test_exclude_crowd_from_masks(coco_dir: Path, tmp_path: Path) -> None:
    options = coco_seg.RuleOptions(min_group_size=2, exclude_crowd_from_masks=True)
    coco_seg.build_coco_seg(
        coco_dir, tmp_path / "d", splits=("train",), options=options, link="symlink", progress=False
    )
    assert (tmp_path / "d" / "images" / "COCO-SEG" / "person" / "000000000002.jpg").is_symlink()
    mask = cv2.imread(str(tmp_path / "d" / "gts" / "COCO-SEG" / "person" / "000000000002.png"), 0)
    solid = [a["segmentation"] for a in train_document()["annotations"] if a["id"] in (2, 3)]
    with_crowd = [a["segmentation"] for a in train_document()["annotations"] if a["id"] in (2, 3, 4)]
    assert np.array_equal(mask, reference_mask(solid, H, W))
    assert not np.array_equal(mask, reference_mask(with_crowd, H, W))


def test_dry_run_needs_no_images(tmp_path: Path) -> None:
    coco = write_coco(tmp_path / "coco", with_images=False)
    root = tmp_path / "data"
    (report,) = coco_seg.build_coco_seg(coco, root, splits=("train",), dry_run=True, progress=False,
                                        options=coco_seg.RuleOptions(min_group_size=2))  # fmt: skip
    rows = read_rows(root / "manifests" / "COCO-SEG.csv")
    assert len(rows) == 6 and all(r["mask_pixels"] == "" for r in rows)
    assert report["dry_run"] is True and report["groups"]["person"]["mean_mask_fraction"] is None
    assert not (root / "gts").exists() and not (root / "images").exists()
    assert report["pairs_sha256"] == hashlib.sha256(b"1,2\n1,4\n1,5\n10,2\n10,5\n10,6\n").hexdigest()


def test_missing_images_are_listed_skipped_and_strict_fails(coco_dir: Path, tmp_path: Path) -> None:
    (coco_dir / "train2017" / "000000000005.jpg").unlink()
    options = coco_seg.RuleOptions(min_group_size=2)
    with pytest.raises(CosalbenchError, match="1 image"):
        coco_seg.build_coco_seg(coco_dir, tmp_path / "strict", options=options, strict=True, progress=False)
    assert not (tmp_path / "strict" / "gts").exists()
    (report, _) = coco_seg.build_coco_seg(coco_dir, tmp_path / "d", options=options, progress=False)
    assert report["missing_images"] == ["train2017/000000000005.jpg"]
    assert (report["n_missing_images"], report["n_skipped_pairs"]) == (1, 2)
    assert report["n_pairs"] == 6  # the rule's pairs (and digest) do not depend on the disk
    rows = read_rows(tmp_path / "d" / "manifests" / "COCO-SEG.csv")
    assert len(rows) == 4 and "000000000005" not in {r["stem"] for r in rows}
    assert report["groups"]["person"]["written"] == 2


def test_resume_and_refuse_a_different_build(coco_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    options = coco_seg.RuleOptions(min_group_size=2)
    coco_seg.build_coco_seg(coco_dir, root, splits=("train",), options=options, progress=False)
    gt = root / "gts" / "COCO-SEG" / "person"
    manifest = (root / "manifests" / "COCO-SEG.csv").read_bytes()
    kept = gt / "000000000004.png"
    kept_mtime = kept.stat().st_mtime_ns
    (gt / "000000000002.png").unlink()  # as if interrupted before this mask
    (gt / "000000000005.tmp.png").write_bytes(b"half")  # a half-written temporary
    (report,) = coco_seg.build_coco_seg(coco_dir, root, splits=("train",), options=options, progress=False)
    assert (report["masks_written"], report["masks_kept"]) == (1, 5)
    assert not (gt / "000000000005.tmp.png").exists() and (gt / "000000000002.png").is_file()
    assert kept.stat().st_mtime_ns == kept_mtime
    assert (root / "manifests" / "COCO-SEG.csv").read_bytes() == manifest
    other = coco_seg.RuleOptions(min_group_size=2, min_area=3000)
    with pytest.raises(CosalbenchError, match="holds a different COCO-SEG build.*min_area: 4000.0 -> 3000.0"):
        coco_seg.build_coco_seg(coco_dir, root, splits=("train",), options=other, progress=False)
    (report,) = coco_seg.build_coco_seg(
        coco_dir, root, splits=("train",), options=other, overwrite=True, progress=False
    )
    assert report["parameters"]["min_area"] == 3000 and report["masks_kept"] == 0
    (again,) = coco_seg.build_coco_seg(
        coco_dir, root, splits=("train",), options=other, overwrite=True, progress=False
    )
    assert again["masks_written"] == report["masks_written"] > 0  # --overwrite rebuilds a finished build
    assert ("person", "000000000001") in {
        (r["group"], r["stem"]) for r in read_rows(root / "manifests" / "COCO-SEG.csv")
    }


def test_foreign_files_are_refused(coco_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "gts" / "COCO-SEG" / "cats").mkdir(parents=True)
    (root / "gts" / "COCO-SEG" / "cats" / "a.png").write_bytes(b"x")
    with pytest.raises(CosalbenchError, match="files not made by build-coco-seg"):
        coco_seg.build_coco_seg(coco_dir, root, splits=("train",), progress=False)


# --- bad input through the command line -------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "annotation file not found"),
        ("", "annotation file is empty"),
        ("half", "truncated"),
        ('{"images": ], "categories": []}', "not valid JSON at byte 11"),
    ],
)
def test_bad_annotation_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    path = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    path.parent.mkdir(parents=True)
    if content is not None:
        text = json.dumps(train_document())
        path.write_text(text[: len(text) // 2] if content == "half" else content)
    status, err = run_cli(
        [
            "build-coco-seg",
            "--coco",
            str(tmp_path / "coco"),
            "--data-root",
            str(tmp_path / "d"),
            "--no-progress",
        ],
        capsys,
    )
    assert status == 2
    assert err.startswith(f"cosalbench: error: {path}: {problem}") and err.count("\n") == 1


def test_inconsistent_annotations_are_refused(tmp_path: Path) -> None:
    document = train_document()
    document["annotations"][0]["image_id"] = 999
    with pytest.raises(CosalbenchError, match="image 999"):
        coco_seg.index_annotations(document, tmp_path / "t.json")
    document = train_document()
    document["annotations"][3]["segmentation"]["size"] = [H + 1, W]
    with pytest.raises(CosalbenchError, match="RLE size"):
        coco_seg.index_annotations(document, tmp_path / "t.json")


def test_cli_prints_verification_and_table(
    coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["build-coco-seg", "--coco", str(coco_dir), "--data-root", str(tmp_path / "d"), "--min-group-size", "2",
            "--workers", "1", "--no-progress", "--splits", "train"]  # fmt: skip
    main(args)
    out = capsys.readouterr().out
    assert "does NOT match the published COCO-SEG list (78 groups, 200,932 pairs)" in out
    assert "dropped under the size cut: hair drier (1)" in out
    assert any(
        line.split()[:3] == ["10", "traffic", "light"] and line.split()[3] == "3" for line in out.splitlines()
    )
