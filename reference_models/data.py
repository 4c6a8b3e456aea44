"""Training and test data for the reference models: canonical datasets held in memory, samplers, augmentation.

Images are decoded once (OpenCV), resized with PIL exactly as the GCoNet reference loaders do (image
BILINEAR, mask NEAREST) and cached as uint8 arrays, so an epoch after the first never touches the disk.
Everything random takes a ``numpy.random.Generator``: the same seed gives the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

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

    def _load_image(self, group: str, index: int) -> np.ndarray:
        bgr = io.read_bgr(self.items[group][index].image_path, ignore_orientation=True)  # as PIL reads it
        self._sizes[(group, index)] = bgr.shape[:2]
        rgb = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
        return np.asarray(rgb.resize((self.size, self.size), Image.BILINEAR))

    def _load_mask(self, group: str, index: int) -> np.ndarray:
        item = self.items[group][index]
        if item.gt_path is None:
            raise CosalbenchError(item.image_path, "this image has no ground-truth mask")
        stored = io.read_gray(item.gt_path, ignore_orientation=True)
        gray = Image.fromarray(stored).resize((self.size, self.size), Image.NEAREST)
        return np.where(np.asarray(gray) > 127, 255, 0).astype(np.uint8)

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
        array = self._load_mask(group, index)
        if self.cache:
            self._masks[key] = array
        return array

    def original_size(self, group: str, index: int) -> tuple[int, int]:
        """(height, width) of the image file before resizing."""
        if (group, index) not in self._sizes:
            self._load_image(group, index)
        return self._sizes[(group, index)]

    def preload(self, workers: int = 4, progress: bool = True) -> None:
        """Decode every image (and mask) now, ``workers`` threads in parallel (OpenCV and PIL release the GIL)."""
        keys = [(group, index) for group in self.groups for index in range(len(self.items[group]))]

        def load(key: tuple[str, int]) -> None:
            self.image(*key)
            if self.with_masks:
                self.mask(*key)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for _ in tqdm(
                pool.map(load, keys), total=len(keys), desc=f"decode {self.name}", disable=not progress
            ):
                pass


def augment(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None,
    rng: np.random.Generator,
    flip_p: float = 0.5,
    max_angle: float = 90.0,
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """GCoNet's augmentation: each image is flipped with probability ``flip_p``, then rotated by an angle
    drawn uniformly from (-max_angle, max_angle) degrees (PIL ``rotate``, no expansion, black corners;
    image BILINEAR, mask NEAREST). Draws per image: flip, then angle.
    """
    out_images, out_masks = [], []
    for index, image in enumerate(images):
        flip = bool(rng.random() < flip_p)
        angle = float(rng.uniform(-max_angle, max_angle))
        pairs = [(image, Image.BILINEAR)] + ([(masks[index], Image.NEAREST)] if masks is not None else [])
        for array, resample in pairs:
            picture = Image.fromarray(array)
            if flip:
                picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
            picture = np.asarray(picture.rotate(angle, resample=resample, expand=False))
            (out_images if array is image else out_masks).append(picture)
    return out_images, (out_masks if masks is not None else None)


def to_tensor_batch(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 RGB images -> float ``[N, 3, H, W]`` normalised with the ImageNet mean/std; masks -> float 0/1 ``[N, 1, H, W]``."""
    # contiguous NCHW like torchvision's ToTensor + stack: a channels-last input changes conv rounding
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    batch = (batch - mean) / std
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
