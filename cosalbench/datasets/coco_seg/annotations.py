"""Reading and indexing a COCO instances file, refusing inconsistent content with one line."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cosalbench.datasets.coco_masks import (
    Segmentation,
)
from cosalbench.errors import CosalbenchError
from cosalbench.layout import (
    CATEGORY_SEPARATOR,
)


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
    with gc_paused():
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            size = len(data)
            if isinstance(exc, json.JSONDecodeError) and exc.pos >= size - 1:
                problem = f"truncated: the JSON ends unfinished at byte {size:,}"
            elif isinstance(exc, json.JSONDecodeError):
                problem = f"not valid JSON at byte {exc.pos:,} of {size:,} ({exc.msg})"
            else:
                problem = f"not valid JSON (not UTF-8 text at byte {exc.start:,} of {size:,})"
            raise CosalbenchError(path, problem, "download and unzip the annotations again") from None
        del data
        return index_annotations(document, path, sha256)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
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
