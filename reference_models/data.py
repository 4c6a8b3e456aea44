"""Training and test data for the reference models: canonical datasets held in memory, samplers, augmentation.

Images are decoded once (OpenCV), resized with PIL exactly as the GCoNet reference loaders do (image
BILINEAR, mask NEAREST) and cached as uint8 arrays, so an epoch after the first never touches the disk.
Everything random takes a ``numpy.random.Generator``: the same seed gives the same batches.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from cosalbench import io, layout
from cosalbench.errors import CosalbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Item:
    """One image of a group: its files and the categories the manifest lists for it (may be empty)."""

    group: str
    stem: str
    image_path: Path
    gt_path: Path | None
    categories: tuple[str, ...] = ()


def resolve_dataset_name(data_root: Path, name: str) -> str:
    """The folder name of dataset ``name``: as given if its images exist, else the registry's canonical spelling."""
    if layout.images_dir(data_root, name).is_dir():
        return name
    try:
        from cosalbench.datasets.registry import lookup
    except ImportError:
        return name
    info = lookup(name)
    return info.name if info is not None else name


def _manifest_categories(data_root: Path, name: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """(group, stem) -> categories from the manifest's ``categories`` column (empty when absent)."""
    found = {}
    for row in layout.read_manifest(data_root, name):
        text = (row.get("categories") or "").strip()
        parts = tuple(c.strip() for c in text.split(layout.CATEGORY_SEPARATOR) if c.strip())
        found[(row.get("group", ""), row.get("stem", ""))] = parts
    return found


class GroupDataset:
    """A canonical dataset held in memory, every image resized to ``size`` x ``size``.

    ``groups`` is the sorted list of non-empty groups, ``items[group]`` the group's images sorted by stem.
    With ``with_masks`` every image must have its ``gts/<name>/<group>/<stem>.png``.
    """

    def __init__(
        self, data_root: str | Path, name: str, size: int, cache: bool = True, with_masks: bool = True
    ) -> None:
        self.data_root = Path(data_root)
        self.name = resolve_dataset_name(self.data_root, name)
        self.size = int(size)
        self.cache = cache
        self.with_masks = with_masks
        image_root = layout.images_dir(self.data_root, self.name)
        if not image_root.is_dir():
            raise CosalbenchError(
                image_root,
                f"dataset {name!r} not found",
                "give --data-root (or $COSALBENCH_DATA) holding images/<Dataset>/<group>/<stem>.jpg",
            )
        categories = _manifest_categories(self.data_root, self.name)
        gt_root = layout.gts_dir(self.data_root, self.name)
        self.items: dict[str, list[Item]] = {}
        for group in layout.list_groups(image_root):
            images = layout.list_images(image_root / group)
            if not images:
                continue
            gts = layout.list_images(gt_root / group) if (gt_root / group).is_dir() else {}
            missing = sorted(set(images) - set(gts))
            if with_masks and missing:
                raise CosalbenchError(
                    gt_root / group,
                    f"{len(missing)} image(s) without a mask, e.g. {missing[0]!r}",
                    "every training image needs gts/<Dataset>/<group>/<stem>.png",
                )
            self.items[group] = [
                Item(group, stem, path, gts.get(stem), categories.get((group, stem), ()))
                for stem, path in images.items()
            ]
        self.groups: list[str] = sorted(self.items)
        if not self.groups:
            raise CosalbenchError(
                image_root, "no group folder holds an image", "expected images/<Dataset>/<group>/*.jpg"
            )
        self._images: dict[tuple[str, int], np.ndarray] = {}
        self._masks: dict[tuple[str, int], np.ndarray] = {}
        self._sizes: dict[tuple[str, int], tuple[int, int]] = {}

    def __len__(self) -> int:
        return sum(len(items) for items in self.items.values())

    def pairs(self) -> list[Item]:
        """Every (group, image) pair: groups sorted, images sorted by stem (the cache's row order)."""
        return [item for group in self.groups for item in self.items[group]]

    def subset(self, groups: Sequence[str]) -> GroupDataset:
        """The same dataset limited to ``groups`` (same files, size and options; its own decoded images)."""
        part = copy.copy(self)
        part.items = {group: self.items[group] for group in groups}
        part.groups = sorted(part.items)
        part._images, part._masks, part._sizes = {}, {}, {}
        part.__dict__.pop("_offsets", None)
        return part

    def rows(self, group_index: int, indices: np.ndarray) -> np.ndarray:
        """Positions in :meth:`pairs` of images ``indices`` of the ``group_index``-th sorted group."""
        if not hasattr(self, "_offsets"):
            sizes = [len(self.items[group]) for group in self.groups]
            self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return self._offsets[group_index] + np.asarray(indices, dtype=np.int64)

    def load_image(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        """uint8 RGB ``(size, size, 3)`` of ``item`` (PIL BILINEAR resize) and its original (height, width)."""
        bgr = io.read_bgr(item.image_path, ignore_orientation=True)  # as PIL reads it
        rgb = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
        return np.asarray(rgb.resize((self.size, self.size), Image.BILINEAR)), bgr.shape[:2]

    def load_mask(self, item: Item) -> np.ndarray:
        """uint8 0/255 ``(size, size)`` mask of ``item`` (PIL NEAREST resize, thresholded at 127)."""
        if item.gt_path is None:
            raise CosalbenchError(item.image_path, "this image has no ground-truth mask")
        stored = io.read_gray(item.gt_path, ignore_orientation=True)
        gray = Image.fromarray(stored).resize((self.size, self.size), Image.NEAREST)
        return np.where(np.asarray(gray) > 127, 255, 0).astype(np.uint8)

    def _load_image(self, group: str, index: int) -> np.ndarray:
        array, self._sizes[(group, index)] = self.load_image(self.items[group][index])
        return array

    def image(self, group: str, index: int) -> np.ndarray:
        """uint8 RGB ``(size, size, 3)`` of image ``index`` of ``group``, decoded once and cached."""
        key = (group, index)
        if key in self._images:
            return self._images[key]
        array = self._load_image(group, index)
        if self.cache:
            self._images[key] = array
        return array

    def mask(self, group: str, index: int) -> np.ndarray:
        """uint8 ``(size, size)`` 0/255 mask of image ``index`` of ``group``, decoded once and cached."""
        key = (group, index)
        if key in self._masks:
            return self._masks[key]
        array = self.load_mask(self.items[group][index])
        if self.cache:
            self._masks[key] = array
        return array

    def original_size(self, group: str, index: int) -> tuple[int, int]:
        """(height, width) of the image file before resizing."""
        if (group, index) not in self._sizes:
            self._load_image(group, index)
        return self._sizes[(group, index)]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Float RGB ``[N, 3, H, W]`` in [0, 1] -> normalised with the ImageNet mean/std (on its device)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def to_tensor_batch(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 RGB images -> float ``[N, 3, H, W]`` normalised with the ImageNet mean/std; masks -> float 0/1 ``[N, 1, H, W]``."""
    # contiguous NCHW like torchvision's ToTensor + stack: a channels-last input changes conv rounding
    batch = normalise(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().float().div_(255.0))
    if masks is None:
        return batch, None
    return batch, torch.from_numpy((np.stack(masks) > 127).astype(np.float32))[:, None]


class GroupPair(NamedTuple):
    """One GCoNet step: ``n`` images of group ``first`` and ``n`` of group ``second`` (indices into the sorted groups)."""

    first: int
    first_images: np.ndarray
    second: int
    second_images: np.ndarray


def group_pairs(
    group_sizes: Sequence[int], rng: np.random.Generator, max_per_group: int = 16
) -> list[GroupPair]:
    """One epoch of GCoNet group pairs: every group once as the first group (random order), each with a
    random partner group; n = min(max_per_group, |g1|, |g2|) images drawn without replacement from each.
    """
    count = len(group_sizes)
    if count < 2:
        raise ValueError(f"group pairs need at least 2 groups, got {count}")
    pairs = []
    for first in rng.permutation(count).tolist():
        second = int(rng.integers(count - 1))
        second += second >= first
        n = min(max_per_group, group_sizes[first], group_sizes[second])
        pairs.append(
            GroupPair(
                first,
                np.sort(rng.choice(group_sizes[first], n, replace=False)),
                second,
                np.sort(rng.choice(group_sizes[second], n, replace=False)),
            )
        )
    return pairs
