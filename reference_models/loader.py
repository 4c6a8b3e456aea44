"""The training data path: epoch plans, each rank's share, worker processes, batched device augmentation.

1. :func:`epoch_plan` draws one epoch (the model's ``plan_batches``: which pairs form each batch, and
   their labels) plus every image's flip and rotation angle, from a generator seeded by (seed, epoch)
   alone, so every rank computes the same plan, a resume needs no replay and worker count, rank and
   device never change what is trained.
2. :func:`rank_share` deals whole batches round-robin: round ``k`` is batches ``k*W .. k*W+W-1`` of the
   epoch, one per rank, and every round is one global optimizer step. An epoch of B batches that is
   not a multiple of W is padded with its first batches (``ddp_leftover: pad``: every batch is used) or
   cut (``drop``); the choice and the counts go into the run's summary.
3. :func:`share_batches` gathers a rank's batches (uint8, from the memory-mapped :mod:`cache`) in
   worker processes straight into a ring of shared-memory slots and yields views of them (zero copy:
   a batch is valid until the next one is requested); :func:`device_batch` copies one to the device
   and flips, rotates and normalises the whole batch there with torch ops, into reusable
   :class:`BatchBuffers`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import mmap
import multiprocessing
import os
import signal
import traceback
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cosalbench.parallel import threads_set
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


class _Ring:
    """``count`` slots, each holding one batch's uint8 images ``[n, S, S, 3]`` and masks ``[n, S, S]``
    (``n`` the largest batch), in one anonymous shared memory mapping made before the workers fork:
    a worker gathers straight into a slot and the trainer reads it there, nothing is copied or sent."""

    def __init__(self, count: int, batch: int, size: int) -> None:
        image_bytes, mask_bytes = batch * size * size * 3, batch * size * size
        # shared, so the workers forked later write where the trainer reads; populated now, so no
        # slot's first batch pays a page fault per 4 KiB
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        self.memory = mmap.mmap(-1, max(1, count * (image_bytes + mask_bytes)), flags=flags)
        whole = torch.frombuffer(self.memory, dtype=torch.uint8)
        self.slots = [
            (
                whole[base : base + image_bytes].view(batch, size, size, 3),
                whole[base + image_bytes : base + image_bytes + mask_bytes].view(batch, size, size),
            )
            for base in range(0, count * (image_bytes + mask_bytes), image_bytes + mask_bytes)
        ]
        self.address, self.pinned = whole.data_ptr(), False

    def pin(self) -> None:
        """Page-lock the slots for CUDA, so a ``non_blocking`` copy from them is asynchronous (best effort:
        unpinned slots are only slower, a copy from pageable memory returns once it has read them)."""
        self.pinned = int(torch.cuda.cudart().cudaHostRegister(self.address, len(self.memory), 0)) == 0

    def release(self) -> None:
        """Called before a slot is written again: pinned, wait until the copies from it have read it."""
        if self.pinned:
            torch.cuda.synchronize()

    def unpin(self) -> None:
        self.release()
        if self.pinned:
            torch.cuda.cudart().cudaHostUnregister(self.address)
            self.pinned = False

    def batch(self, slot: int, plan: BatchPlan) -> dict[str, torch.Tensor]:
        """The batch of ``plan`` as views of ``slot`` (its labels, flags and angles: views of the plan)."""
        images, masks = self.slots[slot]
        count = len(plan.pairs)
        return {
            "images": images[:count],
            "masks": masks[:count],
            "labels": torch.from_numpy(np.asarray(plan.labels)),
            "flipped": torch.from_numpy(plan.flips),  # already mirrored by the gather
            "angles": torch.from_numpy(plan.angles),
        }


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _gather_worker(
    cache: ImageCache,
    plans: Sequence[BatchPlan],
    ring: _Ring,
    tasks: Connection,
    trainer_ends: list[Connection],
) -> None:
    """A loader worker: gathers batch ``index`` into ``slot`` for every ``(index, slot)`` it receives and
    answers ``index`` (or the exception that stopped it), until ``None`` or the trainer is gone.

    It ignores Ctrl-C and SIGTERM (sent to the whole process group): the trainer stops it, so no
    'worker killed by signal' error races the trainer's own one-line exit."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked since the fork: see share_batches
    for end in trainer_ends:  # only the trainer holds them: its exit, however abrupt, ends recv() here
        end.close()
    torch.set_num_threads(1)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        if task is None:
            return
        index, slot = task
        images, masks = ring.slots[slot]
        try:
            cache.gather_into(plans[index].pairs, plans[index].flips, images, masks)
        except Exception as error:  # noqa: BLE001 -- handed to the trainer, which raises it
            error.add_note(f"(in loader worker {os.getpid()}, batch {index})\n{traceback.format_exc()}")
            try:
                tasks.send(error)
            except Exception:  # noqa: BLE001 -- an exception that does not pickle: send its text
                tasks.send(RuntimeError(f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
            return
        tasks.send(index)


def _receive(tasks: Connection, worker: multiprocessing.process.BaseProcess, index: int) -> None:
    """Wait for ``worker`` to answer that batch ``index`` is in its slot; raise what it reports, or that it died."""
    while not tasks.poll():
        wait([tasks, worker.sentinel])
        if not tasks.poll() and not worker.is_alive():
            raise RuntimeError(
                f"loader worker {worker.pid} exited unexpectedly (exit code {worker.exitcode})"
            )
    answer = tasks.recv()
    if isinstance(answer, BaseException):
        raise answer
    if answer != index:
        raise RuntimeError(f"loader worker {worker.pid} answered batch {answer}, expected {index}")


def _stop(workers: list[multiprocessing.process.BaseProcess], ends: list[Connection]) -> None:
    """Tell every worker to stop after its batch in hand, wait for it (kill it after 5 s), close the pipes."""
    for end in ends:
        with contextlib.suppress(OSError):  # a worker that already exited closed its end
            end.send(None)
    for worker in workers:
        worker.join(5.0)
        if worker.is_alive():
            worker.kill()
            worker.join()
    for end in ends:
        end.close()
    workers.clear()  # a second call (atexit after the generator's own stop) has nothing left to do
    ends.clear()


def share_batches(
    cache: ImageCache, plans: Sequence[BatchPlan], workers: int, prefetch: int, pin: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """The uint8 batches of ``plans`` in order, gathered by ``workers`` processes (0: here) into a ring of
    shared memory slots, ``prefetch`` batches ahead per worker (at least one).

    Zero copy: a yielded batch's images and masks are views of its slot, valid until the next batch is
    requested (the slot is then handed back to the workers); :func:`device_batch` copies them, a
    caller that keeps a batch longer must clone it. Batch ``i`` is gathered by worker ``i % workers``.
    With ``pin`` (CUDA) the slots are page-locked, so ``device_batch``'s ``non_blocking`` copy is
    asynchronous; a slot is then handed back only after ``torch.cuda.synchronize()``.

    The workers are stopped and waited for when the iteration ends, however it ends (exhausted, an
    exception, or ``close()`` of this generator), not whenever the garbage collector gets to them.
    """
    if not plans:
        return
    ahead = workers * max(1, prefetch)
    ring = _Ring(ahead + 1 if workers else 1, max(len(plan.pairs) for plan in plans), cache.masks.shape[-1])
    if pin:
        ring.pin()
    try:
        yield from (
            _gathered_by(cache, plans, ring, workers) if workers else _gathered_here(cache, plans, ring)
        )
    finally:
        ring.unpin()


def _gathered_here(
    cache: ImageCache, plans: Sequence[BatchPlan], ring: _Ring
) -> Iterator[dict[str, torch.Tensor]]:
    """``share_batches`` without workers: each batch gathered into the ring's one slot when requested."""
    images, masks = ring.slots[0]
    for plan in plans:
        # one torch thread, as in a worker: the gather is a series of short memory-bound copies, each of
        # which would otherwise wait for every intra-op thread (and on a busy CPU for one that is
        # descheduled: 30x slower on the shared 2-core machine)
        with threads_set(torch.get_num_threads, torch.set_num_threads):
            cache.gather_into(plan.pairs, plan.flips, images, masks)
        yield ring.batch(0, plan)
        ring.release()


def _gathered_by(
    cache: ImageCache, plans: Sequence[BatchPlan], ring: _Ring, workers: int
) -> Iterator[dict[str, torch.Tensor]]:
    """``share_batches`` with ``workers`` processes, each sent ``(batch, slot)`` tasks round-robin as slots
    come free (every slot but the one the trainer holds is being filled or waiting to be read)."""
    context = multiprocessing.get_context("fork")  # the ring and the cache's maps are inherited, not sent
    pipes = [context.Pipe() for _ in range(workers)]
    ends = [trainer for trainer, _ in pipes]
    processes = [
        context.Process(target=_gather_worker, args=(cache, plans, ring, end, ends), daemon=True)
        for _, end in pipes
    ]
    # a signal between a worker's fork and its first line would kill it: hold them meanwhile
    # (a held signal reaches the trainer when the mask is restored; the worker discards its own)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for process in processes:
            process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    for _, end in pipes:
        end.close()
    stop = functools.partial(_stop, processes, ends)
    # a generator still suspended at exit: stop its workers before multiprocessing's exit joins them
    atexit.register(stop)
    try:
        free, slot_of, sent = list(range(len(ring.slots))), {}, 0
        for index, plan in enumerate(plans):
            while free and sent < len(plans):
                slot_of[sent] = free.pop(0)
                ends[sent % workers].send((sent, slot_of[sent]))
                sent += 1
            _receive(ends[index % workers], processes[index % workers], index)
            yield ring.batch(slot_of[index], plan)
            ring.release()
            free.append(slot_of.pop(index))
    finally:
        atexit.unregister(stop)
        stop()


def rotation_grid(
    angles: torch.Tensor, flips: torch.Tensor, height: int, width: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``grid_sample``'s sampling grid ``[n, H, W, 2]`` (normalised, ``align_corners=False``) that mirrors
    each flagged image left-right and then rotates it counter-clockwise by its angle (degrees) about
    its centre, keeping the size (PIL ``transpose(FLIP_LEFT_RIGHT)`` then ``rotate(angle, expand=False)``),
    written into ``out`` when given.

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
    grid = torch.empty((len(angles), height, width, 2), device=device) if out is None else out
    column, row = xs.view(1, 1, width), ys.view(1, height, 1)
    torch.add((mirror * cos).view(-1, 1, 1) * column, (mirror * -sin * aspect).view(-1, 1, 1) * row,
              out=grid[..., 0])  # fmt: skip
    torch.add((sin / aspect).view(-1, 1, 1) * column, cos.view(-1, 1, 1) * row, out=grid[..., 1])
    return grid


class BatchBuffers:
    """The tensors :func:`device_batch` writes, kept from one call to the next (by name, grown to the
    largest batch): a batch made with them is valid until the next call with the same buffers. On the
    CPU a fresh batch-sized tensor costs a page fault per 4 KiB (a third to a half of the conversion);
    on a GPU the caching allocator reuses memory anyway, and stream order keeps reuse safe."""

    def __init__(self) -> None:
        self._flat: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """A float32 tensor of ``shape`` on ``device`` (contiguous, contents undefined)."""
        size = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.numel() < size or flat.device != torch.device(device):
            flat = self._flat[name] = torch.empty(size, device=device)
        return flat[:size].view(shape)


# images per pass on a one-thread CPU: convert, clamp and normalise each chunk while it is in the cache
# (half the time of whole-batch passes). With more torch threads every op waits for all of them, and a
# chunk's op is too short to hide one descheduled by other load (8x slower on a busy 2-core machine):
# there, and on GPUs, the whole batch is one pass per operation.
CPU_CHUNK = 8


def _convert(
    raw: torch.Tensor,
    out: torch.Tensor,
    chunk: int,
    clamp: bool = False,
    subtract: torch.Tensor | None = None,
    divide: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """``out`` (float) = ``raw`` (any dtype and layout; ``raw`` may be ``out`` itself), then clamped to
    [0, 255], minus ``subtract``, divided by ``divide`` (those given), in place, ``chunk`` images at a
    time so each chunk is still in the cache for the next operation: per element the same operations
    as whole-batch passes, so the same bits."""
    for start in range(0, len(out), chunk):
        part = out[start : start + chunk]
        if raw is not out:
            part.copy_(raw[start : start + chunk])
        if clamp:
            part.clamp_(0.0, 255.0)
        if subtract is not None:
            part.sub_(subtract)
        if divide is not None:
            part.div_(divide)
    return out


def _mirror_(batch: torch.Tensor, which: torch.Tensor) -> None:
    """Flip images ``which`` (host bools) left-right in place, image by image (index_select/where over a
    sub-batch cost several passes and allocations of the whole batch on the CPU)."""
    for index in which.nonzero()[:, 0].tolist():
        batch[index] = batch[index].flip(-1)


def _resample(batch: torch.Tensor, which: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """``batch`` with images ``which`` (host indices) resampled on ``grid`` (zeros outside)."""
    if len(which) == len(batch):
        return F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    which = which.to(batch.device)
    batch[which] = F.grid_sample(batch[which], grid, mode=mode, padding_mode="zeros", align_corners=False)
    return batch


def device_batch(
    batch: dict[str, torch.Tensor], device: torch.device, buffers: BatchBuffers | None = None
) -> dict[str, torch.Tensor]:
    """A loader batch as the model trains on it: on ``device``, flipped and rotated per image (bilinear
    images, nearest masks, corners 0), images normalised ``[N, 3, S, S]`` (contiguous NCHW, as the
    official code's ToTensor + stack gives: channels-last changes conv rounding), masks 0/1
    ``[N, 1, S, S]``, labels unchanged. Only images whose angle is non-zero are resampled, each once
    (its flip folded into its rotation grid); the others are flipped by copying.

    ``flips`` are applied here; a :func:`share_batches` batch comes mirrored by its gather instead
    (``flipped``, no ``flips``: the same images, without a pass over the batch). The uint8 input is
    copied, never kept. With ``buffers`` the outputs (and the rotation's input and grid) are written
    into tensors reused from the previous call: that batch is then overwritten.
    """
    buffers = buffers if buffers is not None else BatchBuffers()
    angles = batch["angles"].cpu()
    flips = batch["flips"].cpu().bool() if "flips" in batch else torch.zeros(len(angles), dtype=torch.bool)
    turned = (angles != 0).nonzero()[:, 0]
    count, everything = len(angles), len(turned) == len(angles)
    raw_images = batch["images"].to(device, non_blocking=True)
    raw_masks = batch["masks"].to(device, non_blocking=True)[..., None]
    height, width = raw_images.shape[1:3]
    single = torch.device(device).type == "cpu" and torch.get_num_threads() == 1
    chunk = CPU_CHUNK if single else max(1, count)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
    if everything:  # grid_sample reads any layout: convert keeping the uint8 channels-last order
        images = buffers.get("rotation input", (count, height, width, 3), device).permute(0, 3, 1, 2)
        masks = buffers.get("rotation masks", (count, height, width, 1), device).permute(0, 3, 1, 2)
    else:
        images = buffers.get("images", (count, 3, height, width), device)
        masks = buffers.get("masks", (count, 1, height, width), device)
    rotate = len(turned) > 0  # else normalise while converting: (x - 255 mean) / (255 std), masks x / 255
    _convert(
        raw_images.permute(0, 3, 1, 2),
        images,
        chunk,
        subtract=None if rotate else mean,
        divide=None if rotate else std,
    )
    _convert(raw_masks.permute(0, 3, 1, 2), masks, chunk, divide=None if rotate else 255.0)
    mirror = flips & (angles == 0)
    _mirror_(images, mirror)
    _mirror_(masks, mirror)
    if rotate:
        out = buffers.get("grid", (len(turned), height, width, 2), device)
        grid = rotation_grid(angles[turned].to(device), flips[turned].to(device), height, width, out)
        images = _resample(images, turned, grid, "bilinear")  # a new contiguous tensor when all are turned
        masks = _resample(masks, turned, grid, "nearest")
        _convert(images, images, chunk, clamp=True, subtract=mean, divide=std)
        _convert(masks, masks, chunk, divide=255.0)
    return {"images": images, "masks": masks, "labels": batch["labels"].to(device, non_blocking=True)}
