"""The training data path: epoch plans, each rank's share, worker processes, batched device augmentation.

1. :func:`epoch_plan` draws one epoch (the model's ``plan_batches``: which pairs form each batch, and
   their labels) plus every image's flip and rotation angle, from a generator seeded by (seed, epoch)
   alone, so every rank computes the same plan, a resume needs no replay and worker count, rank and
   device never change what is trained.
2. :func:`rank_share` deals whole batches round-robin: round ``k`` is batches ``k*W .. k*W+W-1`` of the
   epoch, one per rank, and every round is one global optimizer step. An epoch of B batches that is
   not a multiple of W is padded with its first batches (``ddp_leftover: pad``: every batch is used) or
   cut (``drop``); the choice and the counts go into the run's summary.
3. :func:`share_batches` gathers a rank's batches (uint8, from the memory-mapped :mod:`cache`) in torch
   DataLoader worker processes; :func:`device_batch` moves one to the device and flips, rotates and
   normalises the whole batch there with torch ops.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from reference_models.cache import ImageCache
from reference_models.data import IMAGENET_MEAN, IMAGENET_STD, GroupDataset

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
        images, masks = self._cache.gather(plan.pairs, plan.flips)
        return {
            "images": torch.from_numpy(images),
            "masks": torch.from_numpy(masks),
            "labels": torch.from_numpy(np.asarray(plan.labels)),
            "flipped": torch.from_numpy(plan.flips),  # already mirrored by the gather
            "angles": torch.from_numpy(plan.angles),
        }


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _leave_stop_signals_to_the_trainer(_worker_id: int) -> None:
    """A loader worker ignores Ctrl-C and SIGTERM (sent to the whole process group): the trainer stops
    it, so no 'worker killed by signal' error races the trainer's own one-line exit."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked since the fork: see share_batches


def share_batches(
    cache: ImageCache, plans: Sequence[BatchPlan], workers: int, prefetch: int, pin: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """The uint8 batches of ``plans`` in order, gathered by ``workers`` DataLoader processes (0: here).

    The workers are stopped and waited for when the iteration ends, however it ends (exhausted, an
    exception, or ``close()`` of this generator), not whenever the garbage collector gets to them.
    """
    options = {"prefetch_factor": max(1, prefetch), "persistent_workers": False} if workers else {}
    if workers:
        options["worker_init_fn"] = _leave_stop_signals_to_the_trainer
    dataloader = torch.utils.data.DataLoader(
        _ShareDataset(cache.folder, plans),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        **options,
    )
    # a signal between a worker's fork and its init function would kill it: hold them meanwhile
    # (a held signal reaches the trainer when the mask is restored; the worker discards its own)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if workers else None
    try:
        batches = iter(dataloader)
    finally:
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    try:
        yield from batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)  # torch's own orderly stop and join
        if shutdown is not None:
            shutdown()


def rotation_grid(angles: torch.Tensor, flips: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``grid_sample``'s sampling grid ``[n, H, W, 2]`` (normalised, ``align_corners=False``) that mirrors
    each flagged image left-right and then rotates it counter-clockwise by its angle (degrees) about
    its centre, keeping the size (PIL ``transpose(FLIP_LEFT_RIGHT)`` then ``rotate(angle, expand=False)``).

    The same points as ``F.affine_grid`` on the 2x3 rotation matrix, computed as two broadcast sums
    (``affine_grid``'s batched matrix product is the slowest step of a CPU rotation); a flip negates
    the source's x coordinate, so it costs nothing here.
    """
    radians = angles.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    mirror = torch.where(flips, -1.0, 1.0).to(cos)
    aspect = height / width  # normalised coordinates: keep the rotation rigid on non-square inputs
    device = angles.device
    # pixel centres in [-1, 1], as affine_grid spaces them for align_corners=False
    xs = torch.linspace(-1.0, 1.0, width, device=device) * (width - 1) / width
    ys = torch.linspace(-1.0, 1.0, height, device=device) * (height - 1) / height
    grid = torch.empty((len(angles), height, width, 2), device=device)
    column, row = xs.view(1, 1, width), ys.view(1, height, 1)
    torch.add((mirror * cos).view(-1, 1, 1) * column, (mirror * -sin * aspect).view(-1, 1, 1) * row,
              out=grid[..., 0])  # fmt: skip
    torch.add((sin / aspect).view(-1, 1, 1) * column, cos.view(-1, 1, 1) * row, out=grid[..., 1])
    return grid


def _planar(raw: torch.Tensor, mirror: torch.Tensor, any_layout: bool) -> torch.Tensor:
    """uint8 ``[n, S, S, C]`` -> float ``[n, C, S, S]`` in [0, 255], the images flagged in ``mirror``
    (host bools) flipped left-right; contiguous NCHW unless ``any_layout`` (grid_sample reads any)."""
    planar = raw.permute(0, 3, 1, 2)
    if any_layout and not bool(mirror.any()):
        return planar.float()
    out = torch.empty(planar.shape, device=raw.device).copy_(planar)  # transposition + conversion, one pass
    # flip in place image by image: index_select/where over a sub-batch cost several passes and
    # allocations of the whole batch on the CPU
    for index in mirror.nonzero()[:, 0].tolist():
        out[index] = out[index].flip(-1)
    return out


def _resample(batch: torch.Tensor, which: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """``batch`` with images ``which`` (host indices) resampled on ``grid`` (zeros outside)."""
    if len(which) == len(batch):
        return F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    which = which.to(batch.device)
    batch[which] = F.grid_sample(batch[which], grid, mode=mode, padding_mode="zeros", align_corners=False)
    return batch


def device_batch(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A loader batch as the model trains on it: on ``device``, flipped and rotated per image (bilinear
    images, nearest masks, corners 0), images normalised ``[N, 3, S, S]`` (contiguous NCHW, as the
    official code's ToTensor + stack gives: channels-last changes conv rounding), masks 0/1
    ``[N, 1, S, S]``, labels unchanged. Only images whose angle is non-zero are resampled, each once
    (its flip folded into its rotation grid); the others are flipped by copying.

    ``flips`` are applied here; a :func:`share_batches` batch comes mirrored by its gather instead
    (``flipped``, no ``flips``: the same images, without a pass over the batch).
    """
    angles = batch["angles"].cpu()
    flips = batch["flips"].cpu().bool() if "flips" in batch else torch.zeros(len(angles), dtype=torch.bool)
    turned = (angles != 0).nonzero()[:, 0]
    everything = len(turned) == len(angles)
    mirror = flips & (angles == 0)
    images = _planar(batch["images"].to(device, non_blocking=True), mirror, everything)
    masks = _planar(batch["masks"].to(device, non_blocking=True)[..., None], mirror, everything)
    if len(turned):
        height, width = images.shape[-2:]
        grid = rotation_grid(angles[turned].to(device), flips[turned].to(device), height, width)
        images = _resample(images, turned, grid, "bilinear").clamp_(0.0, 255.0)
        masks = _resample(masks, turned, grid, "nearest")
    # (x / 255 - mean) / std as two in-place passes over the batch
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
    return {
        "images": images.sub_(mean).div_(std),
        "masks": masks.div_(255.0),
        "labels": batch["labels"].to(device, non_blocking=True),
    }
