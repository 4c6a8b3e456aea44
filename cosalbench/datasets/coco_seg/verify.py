"""Verification of a selection against the published COCO-SEG list (datasets-facts.md §1.4)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cosalbench.datasets.coco_seg.rule import GroupSelection

# (COCO category id, name, images in the published group), category id order = class label order.
PUBLISHED_GROUPS: tuple[tuple[int, str, int], ...] = (
    (1, "person", 49_355),
    (2, "bicycle", 1_674),
    (3, "car", 5_187),
    (4, "motorcycle", 2_726),
    (5, "airplane", 2_488),
    (6, "bus", 3_364),
    (7, "train", 3_463),
    (8, "truck", 3_767),
    (9, "boat", 1_843),
    (10, "traffic light", 726),
    (11, "fire hydrant", 1_063),
    (13, "stop sign", 994),
    (14, "parking meter", 381),
    (15, "bench", 3_069),
    (16, "bird", 1_485),
    (17, "cat", 3_754),
    (18, "dog", 3_378),
    (19, "horse", 2_428),
    (20, "sheep", 1_063),
    (21, "cow", 1_521),
    (22, "elephant", 1_999),
    (23, "bear", 899),
    (24, "zebra", 1_718),
    (25, "giraffe", 2_382),
    (27, "backpack", 1_578),
    (28, "umbrella", 2_506),
    (31, "handbag", 1_711),
    (32, "tie", 1_234),
    (33, "suitcase", 1_740),
    (34, "frisbee", 440),
    (35, "skis", 471),
    (36, "snowboard", 564),
    (37, "sports ball", 201),
    (38, "kite", 722),
    (39, "baseball bat", 210),
    (40, "baseball glove", 225),
    (41, "skateboard", 1_074),
    (42, "surfboard", 1_481),
    (43, "tennis racket", 1_158),
    (44, "bottle", 2_291),
    (46, "wine glass", 1_094),
    (47, "cup", 3_870),
    (48, "fork", 835),
    (49, "knife", 915),
    (50, "spoon", 603),
    (51, "bowl", 3_981),
    (52, "banana", 1_548),
    (53, "apple", 879),
    (54, "sandwich", 1_947),
    (55, "orange", 963),
    (56, "broccoli", 1_548),
    (57, "carrot", 837),
    (58, "hot dog", 909),
    (59, "pizza", 2_831),
    (60, "donut", 1_007),
    (61, "cake", 2_450),
    (62, "chair", 7_949),
    (63, "couch", 4_164),
    (64, "potted plant", 2_417),
    (65, "bed", 3_615),
    (67, "dining table", 10_560),
    (70, "toilet", 2_977),
    (72, "tv", 3_572),
    (73, "laptop", 2_813),
    (74, "mouse", 339),
    (75, "remote", 495),
    (76, "keyboard", 1_398),
    (77, "cell phone", 963),
    (78, "microwave", 973),
    (79, "oven", 2_436),
    (81, "sink", 2_469),
    (82, "refrigerator", 2_167),
    (84, "book", 1_618),
    (85, "clock", 1_405),
    (86, "vase", 1_612),
    (87, "scissors", 430),
    (88, "teddy bear", 1_789),
    (90, "toothbrush", 221),
)
PUBLISHED_N_PAIRS = 200_932
PUBLISHED_N_IMAGES = 107_132
# sha256 of the sorted lines "<catId>,<imageId>\n" (numeric order: category, then image).
PUBLISHED_PAIRS_SHA256 = "a7bea2e0374972a0e6f95a5c3e1cdc9887e5e849577dac1dac1fe3ccccd13b44"
# sha256 of the sorted unique image ids, one per line (kept for reference in the report).
PUBLISHED_IMAGES_SHA256 = "764f64dec01b0905d965d1e944b5951d84edec69d99cb3410eff207af7102da8"
COCO_TRAIN2017_IMAGES = 118_287


def pairs_sha256(pairs: Mapping[int, Iterable[int]]) -> str:
    """sha256 of the lines ``"<catId>,<imageId>\\n"`` sorted numerically (category, then image)."""
    lines = sorted((cid, image_id) for cid, ids in pairs.items() for image_id in ids)
    return hashlib.sha256("".join(f"{c},{i}\n" for c, i in lines).encode("ascii")).hexdigest()


def images_sha256(image_ids: Iterable[int]) -> str:
    """sha256 of the sorted unique image ids, one ``"<imageId>\\n"`` line each."""
    return hashlib.sha256("".join(f"{i}\n" for i in sorted(set(image_ids))).encode("ascii")).hexdigest()


def compare_with_published(selection: GroupSelection, categories: Mapping[int, str]) -> list[dict[str, Any]]:
    """Groups whose image count differs from the published list (absent groups count as 0)."""
    published = {cid: (name, n) for cid, name, n in PUBLISHED_GROUPS}
    differences = []
    for cid in sorted(published.keys() | selection.pairs.keys()):
        expected = published.get(cid, (None, 0))[1]
        rebuilt = len(selection.pairs.get(cid, ()))
        if rebuilt != expected:
            name = selection.names.get(cid) or categories.get(cid) or published[cid][0]
            differences.append(
                {
                    "category_id": cid,
                    "group": name,
                    "published": expected,
                    "rebuilt": rebuilt,
                    "difference": rebuilt - expected,
                }
            )
    return differences


def verification_message(
    matches: bool,
    selection: GroupSelection,
    differences: Sequence[Mapping[str, Any]],
    n_annotated: int,
    reference: bool,
) -> str:
    """The verification line: a match, or what differs and the likely reason."""
    published = f"the published COCO-SEG list ({len(PUBLISHED_GROUPS)} groups, {PUBLISHED_N_PAIRS:,} pairs)"
    if matches:
        return f"matches {published}"
    text = f"does NOT match {published}: rebuilt {len(selection.pairs)} groups, {selection.n_pairs:,} pairs; "
    if not differences:
        text += "every group has the published size but the images differ"
    elif len(differences) <= 10:
        text += "groups that differ (rebuilt - published): " + ", ".join(
            f"{d['group']} {d['difference']:+,}" for d in differences
        )
    else:
        text += f"{len(differences)} groups differ in size (see the table)"
    if n_annotated != COCO_TRAIN2017_IMAGES:
        text += (
            f". The annotation file lists {n_annotated:,} images, not the {COCO_TRAIN2017_IMAGES:,} of COCO "
            "train2017: a subset cannot match"
        )
    if not reference:
        text += ". The rule options differ from the reference rule"
    return text


def published_summary() -> dict[str, Any]:
    """The published list's sizes and digests, as the report records them."""
    return {
        "n_groups": len(PUBLISHED_GROUPS),
        "n_pairs": PUBLISHED_N_PAIRS,
        "n_images": PUBLISHED_N_IMAGES,
        "pairs_sha256": PUBLISHED_PAIRS_SHA256,
        "images_sha256": PUBLISHED_IMAGES_SHA256,
    }
