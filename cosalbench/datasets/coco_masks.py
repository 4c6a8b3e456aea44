"""COCO segmentations -> binary masks, and the per-image work of a COCO-SEG build.

A COCO ``segmentation`` is a polygon list (one or more parts), an uncompressed RLE (``counts`` a
list of run lengths, used for crowd regions) or a compressed RLE (``counts`` a string). All three
become pycocotools RLEs; the mask of a (group, image) is the union of its annotations, merged in
the RLE domain and decoded once.

pycocotools ``mask.area`` builds its result array as uint8-sized on NumPy 2 and overflows for
lists of 256 or more RLEs, so this module only ever asks for the area of a single merged RLE.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cosalbench.io import link_or_copy, write_bytes
from cosalbench.layout import entry_problem

Segmentation = Any  # list[list[float]] | {"size": [h, w], "counts": list[int] | str}
Rle = dict[str, Any]

# Row filter "none" (OpenCV >= 4.10 lets us choose it) makes 0/255 masks both faster and smaller.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def segmentation_rles(segmentation: Segmentation, height: int, width: int) -> list[Rle]:
    """The RLEs of one annotation's segmentation (one per polygon part).

    Polygon parts with fewer than 3 points are dropped: pycocotools rasterises them to 0 pixels
    when they come after a real part, and rejects the whole list when one comes first.
    """
    if isinstance(segmentation, dict):
        if isinstance(segmentation["counts"], list):
            return [mask_utils.frPyObjects(segmentation, height, width)]
        return [{"size": list(segmentation["size"]), "counts": segmentation["counts"]}]
    parts = [part for part in segmentation if len(part) >= 6]
    return mask_utils.frPyObjects(parts, height, width) if parts else []


def union_rle(segmentations: Sequence[Segmentation], height: int, width: int) -> Rle | None:
    """The union of several segmentations as one RLE (``None`` when they cover nothing)."""
    rles = [rle for segmentation in segmentations for rle in segmentation_rles(segmentation, height, width)]
    if not rles:
        return None
    return rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=0)


def rle_pixels(rle: Rle | None) -> int:
    """Number of foreground pixels of one RLE (0 for ``None``)."""
    return 0 if rle is None else int(mask_utils.area(rle))


def segmentation_pixels(segmentations: Sequence[Segmentation], height: int, width: int) -> int:
    """Rasterised area of the union of ``segmentations`` (pixels), without decoding."""
    return rle_pixels(union_rle(segmentations, height, width))


def decode_mask(rle: Rle | None, height: int, width: int) -> np.ndarray:
    """Decode an RLE to a C-ordered (H, W) uint8 mask with values 0/255."""
    if rle is None:
        return np.zeros((height, width), dtype=np.uint8)
    # pycocotools decodes column-major; cv2.transpose of the C-ordered transpose is a fast reorder.
    mask = cv2.transpose(mask_utils.decode(rle).T)
    np.multiply(mask, 255, out=mask)
    return mask


def encode_mask_png(mask: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit mask: zlib level 1, RLE strategy, no row filter (fastest for 0/255 masks)."""
    ok, buffer = cv2.imencode(".png", mask, PNG_PARAMS)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


@dataclass(frozen=True)
class GroupMember:
    """One (group, image) pair to materialise: the segmentations whose union is the mask."""

    category_id: int
    group: str
    segmentations: tuple[Segmentation, ...]


@dataclass(frozen=True)
class ImageTask:
    """Everything a worker needs for one COCO image: its groups, its source and output folders."""

    image_id: int
    stem: str
    source: str
    height: int
    width: int
    members: tuple[GroupMember, ...]
    images_root: str
    gts_root: str
    link: str


@dataclass(frozen=True)
class ImageResult:
    """What a worker did for one image: mask pixels per category id, files newly written."""

    image_id: int
    pixels: dict[int, int]
    masks_written: int
    links_made: int


def ignore_interrupts() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle (it stops the pool); workers stay quiet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def process_image(task: ImageTask) -> ImageResult:
    """Write the mask and place the JPEG of every group of one image; finished files are kept.

    The mask's pixel count comes from the merged RLE, so a resumed run reports the same numbers
    without re-reading or re-encoding masks that are already on disk.
    """
    pixels: dict[int, int] = {}
    masks_written = links_made = 0
    for member in task.members:
        rle = union_rle(member.segmentations, task.height, task.width)
        pixels[member.category_id] = rle_pixels(rle)
        gt_path = os.path.join(task.gts_root, member.group, f"{task.stem}.png")
        if entry_problem(Path(gt_path)) is not None:
            write_bytes(gt_path, encode_mask_png(decode_mask(rle, task.height, task.width)))
            masks_written += 1
        image_path = os.path.join(task.images_root, member.group, f"{task.stem}.jpg")
        if entry_problem(Path(image_path)) is not None:  # absent, or a broken link / empty copy
            link_or_copy(task.source, image_path, task.link)
            links_made += 1
    return ImageResult(task.image_id, pixels, masks_written, links_made)
