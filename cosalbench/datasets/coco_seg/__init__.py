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

The package follows those seams: :mod:`.annotations` reads the instances files, :mod:`.rule`
selects the groups, :mod:`.verify` compares them with the published list, :mod:`.plan` decides
what a build holds, :mod:`.build` writes it and :mod:`.report` describes it.
"""

from cosalbench.datasets.coco_seg.annotations import (
    CocoAnnotations,
    CocoImage,
    Instance,
    index_annotations,
    load_annotations,
)
from cosalbench.datasets.coco_seg.build import build_coco_seg
from cosalbench.datasets.coco_seg.plan import (
    SPLITS,
    SplitPlan,
    build_stamp,
    image_stem,
    plan_splits,
    stamp_path,
)
from cosalbench.datasets.coco_seg.report import MANIFEST_COLUMNS, format_summary, group_table, manifest_rows
from cosalbench.datasets.coco_seg.rule import (
    AREA_RULES,
    AREA_SOURCES,
    GroupSelection,
    RuleOptions,
    qualifying_area,
    select_groups,
)
from cosalbench.datasets.coco_seg.verify import (
    COCO_TRAIN2017_IMAGES,
    PUBLISHED_GROUPS,
    PUBLISHED_IMAGES_SHA256,
    PUBLISHED_N_IMAGES,
    PUBLISHED_N_PAIRS,
    PUBLISHED_PAIRS_SHA256,
    compare_with_published,
    images_sha256,
    pairs_sha256,
    verification_message,
)

__all__ = [
    "AREA_RULES",
    "AREA_SOURCES",
    "COCO_TRAIN2017_IMAGES",
    "MANIFEST_COLUMNS",
    "PUBLISHED_GROUPS",
    "PUBLISHED_IMAGES_SHA256",
    "PUBLISHED_N_IMAGES",
    "PUBLISHED_N_PAIRS",
    "PUBLISHED_PAIRS_SHA256",
    "SPLITS",
    "CocoAnnotations",
    "CocoImage",
    "GroupSelection",
    "Instance",
    "RuleOptions",
    "SplitPlan",
    "build_coco_seg",
    "build_stamp",
    "compare_with_published",
    "format_summary",
    "group_table",
    "image_stem",
    "images_sha256",
    "index_annotations",
    "load_annotations",
    "manifest_rows",
    "pairs_sha256",
    "plan_splits",
    "qualifying_area",
    "select_groups",
    "stamp_path",
    "verification_message",
]
