"""The training data path: epoch plans, each rank's share, worker processes, batched device augmentation.

1. :func:`epoch_plan` draws one epoch (the model's ``plan_batches``: which pairs form each batch, and
   their labels) plus every image's flip and rotation angle, from a generator seeded by (seed, epoch)
   alone, so every rank computes the same plan, a resume needs no replay and worker count, rank and
   device never change what is trained.
2. :func:`rank_share` deals whole batches round-robin: round ``k`` is batches ``k*W .. k*W+W-1`` of the
   epoch, one per rank, and every round is one global optimizer step. An epoch of B batches that is
   not a multiple of W is padded with its first batches (``ddp_leftover: pad``: every batch is used) or
   cut (``drop``); the choice and the counts go into the run's summary.
3. :class:`ShareLoader` gathers a rank's batches (uint8, from the memory-mapped :mod:`cache`) in torch
   DataLoader worker processes; :func:`device_batch` moves one to the device and flips, rotates and
   normalises the whole batch there with torch ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from reference_models.cache import ImageCache
from reference_models.data import GroupDataset, normalise

LEFTOVER_RULES = ("pad", "drop")


class BatchPlan(NamedTuple):
    """One batch: pair indices into the cache, labels, and each image's flip flag and angle (degrees)."""

    pairs: np.ndarray
    labels: np.ndarray
    flips: np.ndarray
    angles: np.ndarray


def epoch_plan(module: ModuleType, dataset: GroupDataset, cfg: dict, epoch: int) -> list[BatchPlan]:
    """Every batch of ``epoch``: the model's sampling, then one flip draw and one angle per image."""
    rng = np.random.default_rng([int(cfg["seed"]), epoch])
    plans = []
    for pairs, labels in module.plan_batches(dataset, cfg, rng):
        count = len(pairs)
        if cfg["augment"]:
            flips = rng.random(count) < float(cfg["flip_p"])
            angles = rng.uniform(-float(cfg["max_angle"]), float(cfg["max_angle"]), count)
        else:
            flips, angles = np.zeros(count, bool), np.zeros(count)
        plans.append(BatchPlan(np.asarray(pairs, np.int64), labels, flips, angles.astype(np.float32)))
    return plans


def rank_share(batches: int, world: int, rank: int, leftover: str = "pad") -> list[int]:
    """Indices of the epoch's batches that ``rank`` trains on, one per global step (round)."""
    if leftover not in LEFTOVER_RULES:
        raise ValueError(f"unknown leftover rule {leftover!r}; use pad or drop")
    rounds = math.ceil(batches / world) if leftover == "pad" else batches // world
    return [(step * world + rank) % batches for step in range(rounds)]


def round_images(plans: Sequence[BatchPlan], world: int, step: int) -> int:
    """Images of global step ``step`` of the epoch summed over the ranks (that step's effective batch)."""
    return sum(len(plans[(step * world + rank) % len(plans)].pairs) for rank in range(world))


class _ShareDataset(torch.utils.data.Dataset):
    """One item per batch of a rank's share; the cache is opened lazily in each worker."""

    def __init__(self, folder: Path, plans: Sequence[BatchPlan]) -> None:
        self.folder = folder
        self.plans = list(plans)
        self._cache: ImageCache | None = None

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._cache is None:
            self._cache = ImageCache.open(self.folder)
        plan = self.plans[index]
        images, masks = self._cache.gather(plan.pairs)
        return {
            "images": torch.from_numpy(images),
            "masks": torch.from_numpy(masks),
            "labels": torch.from_numpy(np.asarray(plan.labels)),
            "flips": torch.from_numpy(plan.flips),
            "angles": torch.from_numpy(plan.angles),
        }


def share_loader(
    cache: ImageCache, plans: Sequence[BatchPlan], workers: int, prefetch: int, pin: bool = False
) -> torch.utils.data.DataLoader:
    """A DataLoader yielding the uint8 batches of ``plans`` in order (``workers`` processes, 0 = inline)."""
    options = {"prefetch_factor": max(1, prefetch), "persistent_workers": False} if workers else {}
    return torch.utils.data.DataLoader(
        _ShareDataset(cache.folder, plans),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        **options,
    )


def rotate(batch: torch.Tensor, angles: torch.Tensor, mode: str) -> torch.Tensor:
    """Rotate each image of ``[N, C, H, W]`` counter-clockwise by its angle (degrees) about its centre,
    keeping the size and filling the corners with 0 (PIL ``rotate(angle, expand=False)``)."""
    radians = angles.to(batch.dtype) * (math.pi / 180.0)
    cos, sin, zero = torch.cos(radians), torch.sin(radians), torch.zeros_like(radians)
    height, width = batch.shape[-2:]
    aspect = height / width  # normalised grid coordinates: keep the rotation rigid on non-square inputs
    theta = torch.stack(
        [torch.stack([cos, -sin * aspect, zero], 1), torch.stack([sin / aspect, cos, zero], 1)], 1
    )
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)


def device_batch(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A loader batch as the model trains on it: on ``device``, flipped and rotated per image, images
    normalised ``[N, 3, S, S]``, masks 0/1 ``[N, 1, S, S]``, labels unchanged."""
    # contiguous NCHW, as the official code's ToTensor + stack gives (channels-last changes conv rounding)
    images = (
        batch["images"].to(device, non_blocking=True).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    )
    masks = batch["masks"].to(device, non_blocking=True)[:, None].float().div_(255.0)
    flips = batch["flips"].to(device, non_blocking=True).view(-1, 1, 1, 1)
    images = torch.where(flips, images.flip(-1), images)
    masks = torch.where(flips, masks.flip(-1), masks)
    angles = batch["angles"].to(device, non_blocking=True)
    if bool((angles != 0).any()):
        images = rotate(images, angles, "bilinear").clamp_(0.0, 1.0)
        masks = rotate(masks, angles, "nearest")
    return {
        "images": normalise(images),
        "masks": masks,
        "labels": batch["labels"].to(device, non_blocking=True),
    }
