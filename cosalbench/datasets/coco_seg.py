"""COCO2017 annotations -> COCO-SEG (train) and COCO-SEG-val, verified against the published list.

The reference rule (recovered from the authors' ``filt_small_instance``): one group per COCO
category; an image joins a category's group when at least one *non-crowd* annotation of that
category has its annotation ``area`` field strictly above ``min_area`` (4000); groups with fewer
than ``min_group_size`` (100) train images are dropped. val2017 keeps the groups that survive on
train, without a size cut of its own. The mask of a (group, image) is the union of *all*
annotations of the category in the image, crowd regions and small instances included.

A build writes ``images/<Dataset>/<category name>/<%012d>.jpg`` (linked to the COCO JPEG),
``gts/<Dataset>/<category name>/<%012d>.png``, ``manifests/<Dataset>.csv``,
``manifests/<Dataset>.report.json`` and a build stamp ``manifests/<Dataset>.build.json`` that
lets a rerun resume and makes a build with other parameters refuse to mix into it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tqdm import tqdm

from cosalbench import __version__
from cosalbench.datasets.coco_masks import (
    GroupMember,
    ImageResult,
    ImageTask,
    Segmentation,
    ignore_interrupts,
    process_image,
    segmentation_pixels,
)
from cosalbench.errors import CosalbenchError
from cosalbench.io import LINK_MODES, write_csv, write_json
from cosalbench.layout import (
    CATEGORY_SEPARATOR,
    gts_dir,
    images_dir,
    manifest_path,
    report_path,
    resolve_data_root,
)

# ---------------------------------------------------------------------------------------------
# Published facts about the distributed COCO-SEG list (datasets-facts.md §1.4).

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

# split -> (annotation file, image folder, dataset name)
SPLITS: dict[str, tuple[str, str, str]] = {
    "train": ("instances_train2017.json", "train2017", "COCO-SEG"),
    "val": ("instances_val2017.json", "val2017", "COCO-SEG-val"),
}
AREA_SOURCES = ("field", "mask")
AREA_RULES = ("instance", "union")
MANIFEST_COLUMNS = (
    "group",
    "category_id",
    "image_id",
    "stem",
    "width",
    "height",
    "n_instances",
    "n_crowd",
    "max_instance_area",
    "mask_pixels",
    "categories",
)


def stamp_path(data_root: Path, dataset: str) -> Path:
    """The build stamp of a dataset: ``<data-root>/manifests/<dataset>.build.json``."""
    return Path(data_root) / "manifests" / f"{dataset}.build.json"


def image_stem(image_id: int) -> str:
    """COCO's file stem for an image id: 12 digits, zero padded."""
    return f"{image_id:012d}"


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class RuleOptions:
    """How groups are selected and masks drawn; the defaults are the reference rule."""

    min_area: float = 4000.0
    min_group_size: int = 100
    area_from: str = "field"  # "field": annotation `area`; "mask": rasterised pixels
    area_rule: str = "instance"  # "instance": one instance above min_area; "union": all non-crowd together
    exclude_crowd_from_masks: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_area", float(self.min_area))
        if self.area_from not in AREA_SOURCES:
            raise CosalbenchError(None, f"unknown area source {self.area_from!r}", f"use {AREA_SOURCES}")
        if self.area_rule not in AREA_RULES:
            raise CosalbenchError(None, f"unknown area rule {self.area_rule!r}", f"use {AREA_RULES}")
        if self.min_group_size < 0:
            raise CosalbenchError(None, "min_group_size must be >= 0")

    def is_reference(self) -> bool:
        """True when these are the options that produced the published list."""
        return self == RuleOptions()

    def describe(self) -> str:
        """One line stating the rule in words."""
        what = "rasterised area" if self.area_from == "mask" else "`area` field"
        if self.area_rule == "instance":
            which = f"one non-crowd annotation of the category has its {what}"
        else:
            combined = "union" if self.area_from == "mask" else "sum"
            which = f"the {combined} of the category's non-crowd annotations ({what}) is"
        crowd = "excluding" if self.exclude_crowd_from_masks else "including"
        return (
            f"an image joins a category's group when {which} > {self.min_area:g}; groups need "
            f">= {self.min_group_size} train images; masks = union of the category's annotations "
            f"{crowd} crowd regions"
            + (" (reference rule)" if self.is_reference() else " (NOT the reference rule)")
        )


# ---------------------------------------------------------------------------------------------
# Loading


class Instance(NamedTuple):
    """One COCO annotation, reduced to what COCO-SEG needs."""

    crowd: bool
    area: float
    segmentation: Segmentation


class CocoImage(NamedTuple):
    """One COCO image entry."""

    file_name: str
    width: int
    height: int


@dataclass
class CocoAnnotations:
    """An instances file indexed by (image id, category id), without pycocotools' COCO() index."""

    path: Path
    sha256: str
    images: dict[int, CocoImage]
    categories: dict[int, str]
    instances: dict[tuple[int, int], list[Instance]]  # (image id, category id) -> annotations, file order


def load_annotations(path: str | Path) -> CocoAnnotations:
    """Read and index a COCO instances JSON; a missing, truncated or malformed file raises."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CosalbenchError(
            path,
            "annotation file not found",
            "expected the COCO2017 layout <coco>/annotations/instances_*.json",
        ) from None
    except OSError as exc:
        raise CosalbenchError(path, f"cannot read the annotation file ({exc.strerror})") from exc
    if not data.strip():
        raise CosalbenchError(path, "annotation file is empty", "download and unzip the annotations again")
    sha256 = hashlib.sha256(data).hexdigest()
    with _gc_paused():
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            size = len(data)
            if isinstance(exc, json.JSONDecodeError) and exc.pos >= size - 1:
                problem = f"truncated: the JSON ends unfinished at byte {size:,}"
            elif isinstance(exc, json.JSONDecodeError):
                problem = f"not valid JSON at byte {exc.pos:,} of {size:,} ({exc.msg})"
            else:
                problem = "not valid JSON (not UTF-8 text)"
            raise CosalbenchError(path, problem, "download and unzip the annotations again") from None
        del data
        return index_annotations(document, path, sha256)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (re-entrant): the millions of acyclic containers of a COCO
    file would trigger collections that each walk everything parsed so far (~2x the load time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def index_annotations(document: Any, path: Path, sha256: str = "") -> CocoAnnotations:
    """Index a parsed instances document; inconsistent content raises naming ``path``."""
    if not isinstance(document, dict) or not {"images", "annotations", "categories"} <= document.keys():
        raise CosalbenchError(
            path, "not a COCO instances file (needs 'images', 'annotations' and 'categories')"
        )
    try:
        images = {
            int(im["id"]): CocoImage(str(im["file_name"]), int(im["width"]), int(im["height"]))
            for im in document["images"]
        }
        categories = {int(cat["id"]): str(cat["name"]) for cat in document["categories"]}
        instances: dict[tuple[int, int], list[Instance]] = defaultdict(list)
        for ann in document["annotations"]:
            key = (int(ann["image_id"]), int(ann["category_id"]))
            instances[key].append(
                Instance(bool(ann.get("iscrowd", 0)), float(ann["area"]), ann["segmentation"])
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise CosalbenchError(path, f"malformed COCO instances file ({type(exc).__name__}: {exc})") from None
    _check_names(categories, path)
    for (image_id, category_id), found in instances.items():
        if image_id not in images:
            raise CosalbenchError(
                path, f"an annotation refers to image {image_id}, which 'images' does not list"
            )
        if category_id not in categories:
            raise CosalbenchError(path, f"an annotation refers to unknown category {category_id}")
        for instance in found:
            _check_segmentation(instance.segmentation, images[image_id], image_id, path)
    return CocoAnnotations(path, sha256, images, categories, dict(instances))


def _check_names(categories: Mapping[int, str], path: Path) -> None:
    """Category names become folder names and manifest entries: unique, no '/' or separator."""
    seen: set[str] = set()
    for category_id, name in categories.items():
        if not name.strip() or "/" in name or "\\" in name or CATEGORY_SEPARATOR in name or name in seen:
            raise CosalbenchError(path, f"category {category_id} has an unusable or duplicate name {name!r}")
        seen.add(name)


def _check_segmentation(segmentation: Segmentation, image: CocoImage, image_id: int, path: Path) -> None:
    """RLEs must be the image's size (and an uncompressed one must cover it exactly)."""
    if not isinstance(segmentation, dict):
        if not isinstance(segmentation, list):
            raise CosalbenchError(path, f"image {image_id}: a segmentation is neither polygons nor RLE")
        return
    size = [int(v) for v in segmentation.get("size", ())]
    counts = segmentation.get("counts")
    if size != [image.height, image.width]:
        raise CosalbenchError(
            path, f"image {image_id}: RLE size {size} differs from the image's {image.height}x{image.width}"
        )
    if isinstance(counts, list) and sum(counts) != image.height * image.width:
        raise CosalbenchError(
            path, f"image {image_id}: uncompressed RLE counts do not add up to height x width"
        )


# ---------------------------------------------------------------------------------------------
# The rule


def qualifying_area(instances: Sequence[Instance], image: CocoImage, options: RuleOptions) -> float | None:
    """The area the rule compares with ``min_area`` (``None`` when there is no non-crowd instance)."""
    solid = [instance for instance in instances if not instance.crowd]
    if not solid:
        return None
    if options.area_from == "field":
        areas = [instance.area for instance in solid]
        return max(areas) if options.area_rule == "instance" else sum(areas)
    if options.area_rule == "instance":
        return max(segmentation_pixels([i.segmentation], image.height, image.width) for i in solid)
    return segmentation_pixels([i.segmentation for i in solid], image.height, image.width)


@dataclass(frozen=True)
class GroupSelection:
    """The groups of one split: kept category ids (id order) with their sorted image ids."""

    names: dict[int, str]
    pairs: dict[int, tuple[int, ...]]
    dropped: dict[int, int]  # category id -> qualifying images, for groups under the size cut
    image_groups: dict[int, tuple[int, ...]]  # image id -> kept category ids it belongs to

    @property
    def n_pairs(self) -> int:
        """Number of (group, image) pairs."""
        return sum(len(ids) for ids in self.pairs.values())


def select_groups(
    coco: CocoAnnotations, options: RuleOptions, kept: Mapping[int, str] | None = None
) -> GroupSelection:
    """Apply the rule: qualifying images per category, then the size cut (train) or ``kept`` (val)."""
    candidates: dict[int, list[int]] = defaultdict(list)
    for (image_id, category_id), instances in coco.instances.items():
        area = qualifying_area(instances, coco.images[image_id], options)
        if area is not None and area > options.min_area:
            candidates[category_id].append(image_id)
    if kept is None:
        names = {
            cid: coco.categories[cid]
            for cid in sorted(candidates)
            if len(candidates[cid]) >= options.min_group_size
        }
        dropped = {cid: len(candidates[cid]) for cid in sorted(candidates) if cid not in names}
    else:
        names, dropped = dict(sorted(kept.items())), {}
    pairs = {cid: tuple(sorted(candidates.get(cid, ()))) for cid in names}
    image_groups: dict[int, list[int]] = defaultdict(list)
    for cid, ids in pairs.items():
        for image_id in ids:
            image_groups[image_id].append(cid)
    return GroupSelection(names, pairs, dropped, {i: tuple(c) for i, c in sorted(image_groups.items())})


# ---------------------------------------------------------------------------------------------
# Verification


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


# ---------------------------------------------------------------------------------------------
# Manifest and report


def manifest_rows(
    coco: CocoAnnotations,
    selection: GroupSelection,
    pixels: Mapping[tuple[int, int], int] | None = None,
    skip: frozenset[int] = frozenset(),
) -> list[list[Any]]:
    """One row per (group, image) in category id then image id order (``mask_pixels`` empty without pixels)."""
    rows = []
    for cid, ids in selection.pairs.items():
        for image_id in ids:
            if image_id in skip:
                continue
            image = coco.images[image_id]
            instances = coco.instances[(image_id, cid)]
            n_crowd = sum(instance.crowd for instance in instances)
            max_area = max(instance.area for instance in instances if not instance.crowd)
            categories = CATEGORY_SEPARATOR.join(selection.names[c] for c in selection.image_groups[image_id])
            mask_pixels = "" if pixels is None else pixels[(cid, image_id)]
            rows.append(
                [selection.names[cid], cid, image_id, image_stem(image_id), image.width, image.height,
                 len(instances), n_crowd, max_area, mask_pixels, categories]
            )  # fmt: skip
    return rows


def group_table(
    selection: GroupSelection, rows: Sequence[Sequence[Any]], with_published: bool
) -> dict[str, dict[str, Any]]:
    """Per-group summary: images by the rule, rows written, published size, mean mask fraction."""
    published = {cid: n for cid, _, n in PUBLISHED_GROUPS}
    written: Counter[int] = Counter()
    fractions: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        written[row[1]] += 1
        if row[9] != "":
            fractions[row[1]].append(row[9] / (row[4] * row[5]))
    table = {}
    for cid, name in selection.names.items():
        expected = published.get(cid, 0) if with_published else None
        values = fractions.get(cid)
        table[name] = {
            "category_id": cid,
            "images": len(selection.pairs[cid]),
            "written": written[cid],
            "published": expected,
            "difference": None if expected is None else len(selection.pairs[cid]) - expected,
            "mean_mask_fraction": sum(values) / len(values) if values else None,
        }
    return table


def build_stamp(plan: SplitPlan, options: RuleOptions, link: str) -> dict[str, Any]:
    """What identifies a build: parameters, annotation file and pair list digests."""
    return {
        "dataset": plan.dataset,
        "parameters": {**asdict(options), "link": link},
        "annotation_sha256": plan.coco.sha256,
        "pairs_sha256": pairs_sha256(plan.selection.pairs),
    }


# ---------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class SplitPlan:
    """One split to build: its annotations, image folder, dataset name and groups."""

    split: str
    dataset: str
    coco: CocoAnnotations
    image_dir: Path
    selection: GroupSelection

    def source(self, image_id: int) -> Path:
        """Path of an image's JPEG in the COCO download."""
        return self.image_dir / self.coco.images[image_id].file_name


def plan_splits(
    coco_dir: str | Path, splits: Sequence[str], options: RuleOptions, progress: bool = False
) -> list[SplitPlan]:
    """Load the annotations and select the groups of every requested split (train is always read)."""
    coco_dir = Path(coco_dir)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise CosalbenchError(None, f"unknown split(s) {unknown or splits!r}", "use train, val or train,val")
    if not coco_dir.is_dir():
        raise CosalbenchError(
            coco_dir, "COCO folder not found", "point --coco at the folder holding annotations/"
        )

    def load(name: str) -> CocoAnnotations:
        path = coco_dir / "annotations" / name
        if progress and path.is_file():
            print(f"reading {path} ({path.stat().st_size / 1e6:,.1f} MB) ...", file=sys.stderr, flush=True)
        return load_annotations(path)

    train = load(SPLITS["train"][0])
    train_selection = select_groups(train, options)
    plans = []
    for split in sorted(set(splits), key=list(SPLITS).index):
        json_name, folder, dataset = SPLITS[split]
        if split == "train":
            coco, selection = train, train_selection
        else:
            coco = load(json_name)
            selection = select_groups(coco, options, kept=train_selection.names)
        plans.append(SplitPlan(split, dataset, coco, coco_dir / folder, selection))
    return plans


def build_coco_seg(
    coco_dir: str | Path,
    data_root: str | Path | None = None,
    splits: Sequence[str] = ("train", "val"),
    options: RuleOptions | None = None,
    link: str = "hardlink",
    workers: int = 1,
    dry_run: bool = False,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Build COCO-SEG (and COCO-SEG-val) under ``data_root``; return one report per split.

    ``dry_run`` reads only the annotation files: it selects the groups, computes the digests and
    writes the manifest (empty ``mask_pixels``) and report, unless a full build is already there.
    """
    options = options or RuleOptions()
    if link not in LINK_MODES:
        raise CosalbenchError(None, f"unknown link mode {link!r}", f"use one of {', '.join(LINK_MODES)}")
    if workers < 1:
        raise CosalbenchError(None, "--workers must be at least 1")
    root = resolve_data_root(data_root)
    # The parsed annotations are millions of acyclic containers: cyclic collections would only
    # re-walk them (seconds each), so the collector stays paused for the whole build.
    with _gc_paused():
        plans = plan_splits(coco_dir, splits, options, progress)
        if dry_run:
            return [_dry_run(plan, root, options, link) for plan in plans]
        missing = {plan.dataset: _missing_images(plan) for plan in plans}
        if strict:
            for plan in plans:
                if missing[plan.dataset]:
                    names = ", ".join(
                        plan.coco.images[i].file_name for i in sorted(missing[plan.dataset])[:5]
                    )
                    raise CosalbenchError(
                        plan.image_dir,
                        f"{len(missing[plan.dataset])} image(s) missing, e.g. {names}",
                        "--strict is on",
                    )
        stamps = {plan.dataset: build_stamp(plan, options, link) for plan in plans}
        for plan in plans:
            _prepare_output(root, plan.dataset, stamps[plan.dataset], overwrite)
        return [
            _build_split(
                plan, root, options, link, workers, missing[plan.dataset], stamps[plan.dataset], progress
            )
            for plan in plans
        ]


def _missing_images(plan: SplitPlan) -> frozenset[int]:
    """Ids of the split's member images whose JPEG is not on disk."""
    return frozenset(i for i in plan.selection.image_groups if not plan.source(i).is_file())


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _prepare_output(root: Path, dataset: str, stamp: Mapping[str, Any], overwrite: bool) -> None:
    """Resume a matching build, start a fresh one, or refuse/replace a different one."""
    path = stamp_path(root, dataset)
    previous: Any = None
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
    if previous == stamp and not overwrite:
        return
    occupied = [
        folder for folder in (images_dir(root, dataset), gts_dir(root, dataset)) if _has_files(folder)
    ]
    if previous is None and not occupied:
        return
    if not overwrite:
        if previous is None:
            where, what = occupied[0], "files not made by build-coco-seg"
        else:
            where, what = path, _stamp_difference(previous, stamp)
        raise CosalbenchError(
            where,
            f"holds a different {dataset} build ({what})",
            "pass --overwrite to replace it, or choose another --data-root",
        )
    for folder in (images_dir(root, dataset), gts_dir(root, dataset)):
        if folder.is_dir():
            shutil.rmtree(folder)
    for file in (manifest_path(root, dataset), report_path(root, dataset), path):
        file.unlink(missing_ok=True)


def _stamp_difference(previous: Mapping[str, Any], stamp: Mapping[str, Any]) -> str:
    """``key: old -> new`` for each stamp entry that differs."""
    flat_old = {**previous.get("parameters", {}), **{k: v for k, v in previous.items() if k != "parameters"}}
    flat_new = {**stamp["parameters"], **{k: v for k, v in stamp.items() if k != "parameters"}}
    changed = [
        f"{k}: {_short(flat_old.get(k))} -> {_short(flat_new[k])}"
        for k in flat_new
        if flat_old.get(k) != flat_new[k]
    ]
    return "; ".join(changed) or "unreadable build stamp"


def _short(value: Any) -> str:
    """A stamp value for a message (digests cut to 12 characters)."""
    text = str(value)
    return f"{text[:12]}..." if len(text) == 64 else text


def _remove_temporaries(root: Path, dataset: str) -> None:
    """Delete ``*.tmp.*`` files an interrupted run may have left (never under a final name)."""
    for folder in (images_dir(root, dataset), gts_dir(root, dataset)):
        if not folder.is_dir():
            continue
        for group in os.scandir(folder):
            if group.is_dir():
                for entry in os.scandir(group.path):
                    if ".tmp." in entry.name:
                        os.unlink(entry.path)


def _image_tasks(
    plan: SplitPlan, root: Path, options: RuleOptions, link: str, skip: frozenset[int]
) -> Iterator[ImageTask]:
    """One task per member image present on disk, in image id order."""
    selection, coco = plan.selection, plan.coco
    for image_id, category_ids in selection.image_groups.items():
        if image_id in skip:
            continue
        image = coco.images[image_id]
        members = tuple(
            GroupMember(
                cid,
                selection.names[cid],
                tuple(
                    inst.segmentation
                    for inst in coco.instances[(image_id, cid)]
                    if not (options.exclude_crowd_from_masks and inst.crowd)
                ),
            )
            for cid in category_ids
        )
        yield ImageTask(
            image_id, image_stem(image_id), str(plan.source(image_id)), image.height, image.width, members,
            str(images_dir(root, plan.dataset)), str(gts_dir(root, plan.dataset)), link,
        )  # fmt: skip


def _map_images(tasks: Iterable[ImageTask], workers: int) -> Iterator[ImageResult]:
    """Run :func:`process_image` in this process or in a spawned pool (no copy of the parsed JSON)."""
    if workers == 1:
        yield from map(process_image, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=ignore_interrupts) as pool:
        yield from pool.imap_unordered(process_image, tasks, chunksize=16)


def _build_split(
    plan: SplitPlan,
    root: Path,
    options: RuleOptions,
    link: str,
    workers: int,
    missing: frozenset[int],
    stamp: Mapping[str, Any],
    progress: bool,
) -> dict[str, Any]:
    """Write masks, links, manifest and report of one split (resuming finished files)."""
    write_json(stamp_path(root, plan.dataset), stamp)
    _remove_temporaries(root, plan.dataset)
    pixels: dict[tuple[int, int], int] = {}
    masks_written = links_made = 0
    total = sum(len(plan.selection.image_groups[i]) for i in plan.selection.image_groups if i not in missing)
    tasks = _image_tasks(plan, root, options, link, missing)
    try:
        with tqdm(
            total=total, desc=f"{plan.dataset} masks", unit="mask", disable=not progress, file=sys.stderr
        ) as bar:
            for result in _map_images(tasks, workers):
                for cid, count in result.pixels.items():
                    pixels[(cid, result.image_id)] = count
                masks_written += result.masks_written
                links_made += result.links_made
                bar.update(len(result.pixels))
    except OSError as exc:
        raise CosalbenchError(
            exc.filename or gts_dir(root, plan.dataset),
            f"cannot write the build ({exc.strerror})",
            "free disk space or fix permissions, then rerun: finished files are kept",
        ) from exc
    rows = manifest_rows(plan.coco, plan.selection, pixels, skip=missing)
    report = _report(plan, options, link, rows, dry_run=False)
    report.update(
        missing_images=[f"{plan.image_dir.name}/{plan.coco.images[i].file_name}" for i in sorted(missing)],
        n_missing_images=len(missing),
        n_skipped_pairs=sum(len(plan.selection.image_groups[i]) for i in missing),
        masks_written=masks_written,
        masks_kept=len(rows) - masks_written,
        links_made=links_made,
    )
    _write_outputs(root, plan.dataset, rows, report)
    return report


def _dry_run(plan: SplitPlan, root: Path, options: RuleOptions, link: str) -> dict[str, Any]:
    """Select and verify without images; write manifest and report unless a full build is there."""
    rows = manifest_rows(plan.coco, plan.selection)
    report = _report(plan, options, link, rows, dry_run=True)
    built = (
        stamp_path(root, plan.dataset).is_file()
        or _has_files(images_dir(root, plan.dataset))
        or _has_files(gts_dir(root, plan.dataset))
    )
    if built:
        report["note"] = "a full build is present: its manifest and report were left untouched"
    else:
        _write_outputs(root, plan.dataset, rows, report)
    return report


def _write_outputs(root: Path, dataset: str, rows: Sequence[Sequence[Any]], report: dict[str, Any]) -> None:
    report["manifest"] = str(manifest_path(root, dataset))
    report["report"] = str(report_path(root, dataset))
    write_csv(manifest_path(root, dataset), MANIFEST_COLUMNS, rows)
    write_json(report_path(root, dataset), report)


def _report(
    plan: SplitPlan, options: RuleOptions, link: str, rows: Sequence[Sequence[Any]], dry_run: bool
) -> dict[str, Any]:
    """The report document of one split (verification against the published list on train)."""
    selection = plan.selection
    is_train = plan.split == "train"
    digest = pairs_sha256(selection.pairs)
    differences = compare_with_published(selection, plan.coco.categories) if is_train else []
    matches = digest == PUBLISHED_PAIRS_SHA256 if is_train else None
    if is_train:
        verification = verification_message(
            bool(matches), selection, differences, len(plan.coco.images), options.is_reference()
        )
    else:
        verification = "no published list to compare with (val2017 under the train groups)"
    histogram = Counter(len(c) for c in selection.image_groups.values())
    return {
        "cosalbench": __version__,
        "dataset": plan.dataset,
        "split": plan.split,
        "dry_run": dry_run,
        "parameters": {**asdict(options), "link": link},
        "rule": options.describe(),
        "reference_rule": options.is_reference(),
        "annotation_file": str(plan.coco.path),
        "annotation_sha256": plan.coco.sha256,
        "annotated_images": len(plan.coco.images),
        "n_groups": len(selection.pairs),
        "n_pairs": selection.n_pairs,
        "n_images": len(selection.image_groups),
        "pairs_sha256": digest,
        "images_sha256": images_sha256(selection.image_groups),
        "published": {
            "n_groups": len(PUBLISHED_GROUPS),
            "n_pairs": PUBLISHED_N_PAIRS,
            "n_images": PUBLISHED_N_IMAGES,
            "pairs_sha256": PUBLISHED_PAIRS_SHA256,
            "images_sha256": PUBLISHED_IMAGES_SHA256,
        }
        if is_train
        else None,
        "matches_published": matches,
        "verification": verification,
        "group_differences": differences,
        "dropped_groups": [
            {"category_id": cid, "group": plan.coco.categories[cid], "images": n}
            for cid, n in selection.dropped.items()
        ],
        "groups_per_image": {str(k): histogram[k] for k in sorted(histogram)},
        "groups": group_table(selection, rows, with_published=is_train),
        "missing_images": None,
        "n_missing_images": None,
    }


# ---------------------------------------------------------------------------------------------
# Printing


def format_summary(report: Mapping[str, Any]) -> str:
    """The one-screen text a build prints: counts, verification line, per-group table."""
    lines = [
        f"{report['dataset']} from {report['annotation_file']} ({report['annotated_images']:,} annotated images)"
        + (" [dry run]" if report["dry_run"] else ""),
        f"  rule: {report['rule']}",
        f"  {report['n_groups']} groups, {report['n_pairs']:,} pairs over {report['n_images']:,} images",
    ]
    if report["dropped_groups"]:
        dropped = ", ".join(f"{d['group']} ({d['images']})" for d in report["dropped_groups"])
        lines.append(f"  dropped under the size cut: {dropped}")
    lines.append(f"  pairs sha256 {report['pairs_sha256']}: {report['verification']}")
    if not report["dry_run"]:
        missing = report["n_missing_images"]
        lines.append(
            f"  masks: {report['masks_written']:,} written, {report['masks_kept']:,} kept from an earlier run; "
            f"images: {report['links_made']:,} placed ({report['parameters']['link']}); missing images: {missing:,}"
            + (f" (skipped {report['n_skipped_pairs']:,} pairs; listed in the report)" if missing else "")
        )
    if "manifest" in report:
        lines.append(f"  manifest: {report['manifest']}  report: {report['report']}")
    if "note" in report:
        lines.append(f"  note: {report['note']}")
    absent = [d for d in report["group_differences"] if d["group"] not in report["groups"]]
    if absent:
        lines.append(
            "  published groups absent here: "
            + ", ".join(f"{d['group']} ({d['published']:,})" for d in absent)
        )
    with_published = report["published"] is not None
    header = f"  {'id':>4}  {'group':<16} {'images':>8}"
    header += f" {'published':>10} {'diff':>8}" if with_published else ""
    lines.append(header + f" {'mask':>7}")
    for name, group in report["groups"].items():
        line = f"  {group['category_id']:>4}  {name:<16} {group['images']:>8,}"
        if with_published:
            line += f" {group['published']:>10,} {group['difference']:>+8,}"
        fraction = group["mean_mask_fraction"]
        lines.append(line + (f" {fraction:>7.1%}" if fraction is not None else f" {'-':>7}"))
    return "\n".join(lines)
