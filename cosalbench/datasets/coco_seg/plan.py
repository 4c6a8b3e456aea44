"""Planning a build: which splits, their annotations and groups, and the stamp identifying a build."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cosalbench.datasets.coco_seg.annotations import CocoAnnotations, load_annotations
from cosalbench.datasets.coco_seg.rule import GroupSelection, RuleOptions, select_groups
from cosalbench.datasets.coco_seg.verify import pairs_sha256
from cosalbench.errors import CosalbenchError

# split -> (annotation file, image folder, dataset name)
SPLITS: dict[str, tuple[str, str, str]] = {
    "train": ("instances_train2017.json", "train2017", "COCO-SEG"),
    "val": ("instances_val2017.json", "val2017", "COCO-SEG-val"),
}


def stamp_path(data_root: Path, dataset: str) -> Path:
    """The build stamp of a dataset: ``<data-root>/manifests/<dataset>.build.json``."""
    return Path(data_root) / "manifests" / f"{dataset}.build.json"


def image_stem(image_id: int) -> str:
    """COCO's file stem for an image id: 12 digits, zero padded."""
    return f"{image_id:012d}"


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
        problem = "is not a folder" if os.path.lexists(coco_dir) else "COCO folder not found"
        raise CosalbenchError(coco_dir, problem, "point --coco at the folder holding annotations/")

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


def build_stamp(plan: SplitPlan, options: RuleOptions, link: str) -> dict[str, Any]:
    """What identifies a build: parameters, annotation file and pair list digests."""
    return {
        "dataset": plan.dataset,
        "parameters": {**asdict(options), "link": link},
        "annotation_sha256": plan.coco.sha256,
        "pairs_sha256": pairs_sha256(plan.selection.pairs),
    }
