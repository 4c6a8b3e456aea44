"""The decoded-image cache of a training set: every image decoded once, at the training size, on disk.

One cache entry holds a dataset at one size: ``images.u8`` (one uint8 RGB ``size x size`` row per
*distinct* image file, so a photo linked into several groups is stored once), ``masks.u8`` (one 0/255
row per (group, image) pair: its mask differs between groups), ``index.npz`` (pair -> image row,
original sizes) and ``stamp.json`` (the inputs it was built from). The arrays are opened as NumPy
memory maps, so every rank and loader worker of a machine reads one copy through the page cache.

The entry's folder name carries a digest of its inputs (dataset, size, every file's path, byte size
and modification time): a changed file gives a new entry, an unchanged set reuses the old one across
runs and resumes. An entry is built in a temporary folder and renamed into place when complete, so
an interrupted build is never reused and two builders cannot mix their files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cosalbench import io
from reference_models.data import GroupDataset

CACHE_VERSION = 1
IMAGES, MASKS, INDEX, STAMP = "images.u8", "masks.u8", "index.npz", "stamp.json"


def default_cache_root() -> Path:
    """``$COSALBENCH_CACHE``, else ``$XDG_CACHE_HOME/cosalbench``, else ``~/.cache/cosalbench``."""
    if os.environ.get("COSALBENCH_CACHE"):
        return Path(os.environ["COSALBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cosalbench"


@dataclass(frozen=True)
class ImageCache:
    """An opened cache entry. Pair ``i`` (groups sorted, images sorted by stem, as
    :meth:`GroupDataset.pairs`) has image ``images[image_row[i]]`` and mask ``masks[i]``."""

    folder: Path
    images: np.ndarray  # memmap uint8 [distinct images, S, S, 3]
    masks: np.ndarray  # memmap uint8 [pairs, S, S]
    image_row: np.ndarray  # int64 [pairs]
    original_sizes: np.ndarray  # int64 [pairs, 2] (height, width)

    @classmethod
    def open(cls, folder: Path) -> ImageCache:
        """Open a complete entry read-only (memory-mapped)."""
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
        index = np.load(folder / INDEX)
        size, distinct, pairs = stamp["size"], stamp["distinct_images"], stamp["pairs"]
        images = np.memmap(folder / IMAGES, np.uint8, "r", shape=(distinct, size, size, 3))
        masks = np.memmap(folder / MASKS, np.uint8, "r", shape=(pairs, size, size))
        return cls(folder, images, masks, index["image_row"], index["original_sizes"])

    @cached_property
    def _torch_images(self) -> torch.Tensor:
        """A torch view of the read-only images map (never written through: torch warns it could be)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(self.images)

    def gather_into(
        self, pairs: np.ndarray, flips: np.ndarray | None, images: torch.Tensor, masks: torch.Tensor
    ) -> None:
        """Copy the given pairs' images and masks into the first ``len(pairs)`` rows of the uint8 tensors
        ``images [>= n, S, S, 3]`` and ``masks [>= n, S, S]``, those flagged in ``flips`` mirrored
        left-right while they are copied (no pass of their own). NumPy copies all but the flipped
        images, which torch's flip copies (NumPy's reversed copy of 3-byte pixels is ten times slower),
        so few torch ops wait on a busy CPU's second thread."""
        image_rows, mask_rows = images.numpy(), masks.numpy()
        flags = [False] * len(pairs) if flips is None else flips.tolist()
        rows = self.image_row[pairs].tolist()
        for index, (pair, row, flip) in enumerate(zip(pairs.tolist(), rows, flags, strict=True)):
            if flip:
                images[index].copy_(self._torch_images[row].flip(1))
                mask_rows[index] = self.masks[pair, :, ::-1]
            else:
                image_rows[index] = self.images[row]
                mask_rows[index] = self.masks[pair]

    def gather(self, pairs: np.ndarray, flips: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``[n, S, S, 3]`` and masks ``[n, S, S]`` of the given pair indices (new arrays),
        those flagged in ``flips`` mirrored left-right (:meth:`gather_into`)."""
        size = self.masks.shape[-1]
        images, masks = (
            np.empty((len(pairs), size, size, 3), np.uint8),
            np.empty((len(pairs), size, size), np.uint8),
        )
        self.gather_into(pairs, flips, torch.from_numpy(images), torch.from_numpy(masks))
        return images, masks


def _file_identity(path: Path | None) -> list:
    if path is None:
        return [None]
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def stamp(dataset: GroupDataset) -> dict:
    """The inputs of ``dataset``'s cache entry and their digest (what makes an entry stale)."""
    files = [
        [item.group, item.stem, *_file_identity(item.image_path), *_file_identity(item.gt_path)]
        for item in dataset.pairs()
    ]
    text = json.dumps([CACHE_VERSION, dataset.name, dataset.size, files])
    return {
        "version": CACHE_VERSION,
        "dataset": dataset.name,
        "data_root": str(dataset.data_root),
        "size": dataset.size,
        "pairs": len(files),
        "digest": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


def entry_folder(root: Path, info: dict) -> Path:
    """``<root>/<dataset>-<size>-<digest prefix>``."""
    return Path(root) / f"{info['dataset']}-{info['size']}-{info['digest'][:16]}"


def _distinct_rows(dataset: GroupDataset) -> tuple[np.ndarray, list[int]]:
    """Pair -> image row, and for each row the first pair showing it (files identified by device and inode)."""
    rows: dict[tuple[int, int], int] = {}
    image_row, first_pair = [], []
    for index, item in enumerate(dataset.pairs()):
        stat = item.image_path.stat()
        key = (stat.st_dev, stat.st_ino)
        if key not in rows:
            rows[key] = len(first_pair)
            first_pair.append(index)
        image_row.append(rows[key])
    return np.asarray(image_row, dtype=np.int64), first_pair


def build(dataset: GroupDataset, folder: Path, info: dict, workers: int = 4, progress: bool = True) -> None:
    """Decode ``dataset`` into a new entry at ``folder`` (written under a temporary name, then renamed)."""
    pairs = dataset.pairs()
    image_row, first_pair = _distinct_rows(dataset)
    size = dataset.size
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        images = np.memmap(tmp / IMAGES, np.uint8, "w+", shape=(len(first_pair), size, size, 3))
        masks = np.memmap(tmp / MASKS, np.uint8, "w+", shape=(len(pairs), size, size))
        row_sizes = np.zeros((len(first_pair), 2), dtype=np.int64)

        def decode_image(row: int) -> None:
            images[row], row_sizes[row] = dataset.load_image(pairs[first_pair[row]])

        def decode_mask(index: int) -> None:
            masks[index] = dataset.load_mask(pairs[index])

        jobs = [(decode_image, row) for row in range(len(first_pair))] + [
            (decode_mask, index) for index in range(len(pairs))
        ]
        with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV and PIL release the GIL
            done = pool.map(lambda job: job[0](job[1]), jobs)
            for _ in tqdm(done, total=len(jobs), desc=f"cache {dataset.name} {size}px", disable=not progress):
                pass
        images.flush()
        masks.flush()
        np.savez(tmp / INDEX, image_row=image_row, original_sizes=row_sizes[image_row])
        io.write_json(tmp / STAMP, {**info, "distinct_images": len(first_pair)})
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / STAMP).is_file():  # not another builder's complete entry: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_or_build(
    dataset: GroupDataset, root: Path, workers: int = 4, progress: bool = True, may_build: bool = True
) -> ImageCache:
    """The cache entry of ``dataset`` under ``root``, built first when missing (only when ``may_build``:
    in a distributed run one process per machine builds, the others wait for it and open)."""
    info = stamp(dataset)
    folder = entry_folder(root, info)
    if may_build and not (folder / STAMP).is_file():
        build(dataset, folder, info, workers, progress)
    return ImageCache.open(folder)
