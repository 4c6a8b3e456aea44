"""The COCO-SEG rule: which (category, image) pairs form the groups, and its options."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cosalbench.datasets.coco_masks import (
    segmentation_pixels,
)
from cosalbench.datasets.coco_seg.annotations import CocoAnnotations, CocoImage, Instance
from cosalbench.errors import CosalbenchError

AREA_SOURCES = ("field", "mask")
AREA_RULES = ("instance", "union")


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
