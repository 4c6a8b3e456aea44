"""Images/s the training data path delivers to the model, new path against the previous one, same run.

Every path starts from decoded uint8 images at the training size (the decode itself happens once in
either; the cache build is timed separately) and ends with the batch the model trains on: normalised
float images, 0/1 masks, labels, augmentation included (GCoNet: flip p=0.5 + rotation in (-90, 90);
RCGS: flip p=0.5).

* previous: per-pair dict of decoded arrays, PIL flip/rotate image by image, ``to_tensor_batch``
  (what the trainer did before the cache: one thread, every rank building every batch);
* new, in-process: ``loader.share_batches`` with no workers (the trainer gathers each batch from the
  memory-mapped cache into its one shared-memory slot, flips folded in), then ``loader.device_batch``
  with reused ``BatchBuffers`` (rotation and normalisation as batched torch ops: on the CPU here, on
  the GPU in a real run) -- what ``train.py`` does with ``loader_workers: 0``;
* new, workers: ``share_batches`` worker processes gather the uint8 batches into the ring of shared
  memory slots, the measuring process only runs ``device_batch`` on what arrives (a training rank);
* host delivery: the worker processes' uint8 batches arriving in the measuring process (zero copy:
  views of the slots), nothing else -- what feeds a GPU, whose ``device_batch`` runs on the device.

The new paths stream ``max(4 x --batches, 20)`` batches after a first round over the ring's slots:
their wall rates are steady state, counted after every slot has been used once (starting the workers
and that first round is printed apart, as "start"); the previous path runs ``--batches`` batches.
Then, for the in-process path, where the time of one batch goes: the gather (``share_batches``
without workers, alone), flip/convert/normalise (the batch's ``device_batch`` with its angles set to
0), the rotation (``rotation_grid`` and the two ``grid_sample`` calls, bilinear images and nearest
masks, on float batches), all of ``device_batch``, and a floor: writing the float outputs once
(``fill_``), the least any CPU path must do. Memory: the proportional set size
(PSS) of each process, which counts shared pages (the cache and the slots) once per machine divided
among the processes mapping them; the previous path held its own copy of the decoded set in every
rank. Each rate is also given per CPU-second (this process and its worker processes together, over
the whole stream, start included), which other load on the machine disturbs less than wall time; on
a shared machine compare the ratios within one run. With several torch threads on a busy machine
every torch op waits for a descheduled thread (the CPU-torch augmentation then runs several times
slower, per CPU-second too, as the waiting threads spin): ``--threads 1`` measures it without that.
Run::

    python benchmarks/loader_speed.py [--batches 6] [--size 224] [--workers 2] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cosalbench.datasets import synth
from reference_models import cache, gconet, loader, rcgs
from reference_models.data import GroupDataset, to_tensor_batch

# model -> (module, synthetic set (groups, images per group), recipe keys of the batch)
SETUPS = {
    "gconet 2x16": (gconet, (4, 16), {"group_size": 16, "flip_p": 0.5, "max_angle": 90.0}),
    "rcgs 56x5": (
        rcgs,
        (8, 35),
        {"subgroup_size": 5, "subgroups_per_batch": 56, "flip_p": 0.5, "max_angle": 0.0},
    ),
}


PREFETCH = 2  # batches ahead per worker (the recipes' default)


def pss_mib(pid: int | str = "self") -> float:
    """Proportional set size of process ``pid`` in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def previous_batch(
    dataset: GroupDataset, where: list[tuple[str, int]], plan: loader.BatchPlan
) -> dict[str, torch.Tensor]:
    """The previous path: per-image arrays from the dataset's dict, PIL augmentation, stacking."""
    images, masks = [], []
    for index, flip, angle in zip(
        plan.pairs.tolist(), plan.flips.tolist(), plan.angles.tolist(), strict=True
    ):
        group, position = where[index]
        for array, resample, out in (
            (dataset.image(group, position), Image.BILINEAR, images),
            (dataset.mask(group, position), Image.NEAREST, masks),
        ):
            picture = Image.fromarray(array)
            if flip:
                picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
            out.append(np.asarray(picture.rotate(angle, resample=resample, expand=False)))
    image_tensor, mask_tensor = to_tensor_batch(images, masks)
    return {"images": image_tensor, "masks": mask_tensor, "labels": torch.from_numpy(np.asarray(plan.labels))}


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rate(make, plans: list[loader.BatchPlan]) -> tuple[float, float]:  # noqa: ANN001 -- a batch builder
    """Images per second (wall) and per CPU-second of ``make(plan)`` over ``plans`` (after one warm-up)."""
    make(plans[0])
    start, cpu = time.perf_counter(), cpu_seconds()
    for plan in plans:
        make(plan)
    images = sum(len(plan.pairs) for plan in plans)
    return images / (time.perf_counter() - start), images / (cpu_seconds() - cpu)


def stream_rate(entry: cache.ImageCache, plans: list[loader.BatchPlan], workers: int, augment: bool) -> dict:
    """Steady-state images/s of ``share_batches`` batches arriving here (``workers`` 0: gathered here) (``device_batch`` applied here
    when ``augment``), after a first round over the ring's slots (whose time is returned as ``startup_s``),
    and the PSS of each worker near the end."""
    cpu, buffers = torch.device("cpu"), loader.BatchBuffers()
    warm_up = workers * PREFETCH + 1  # every slot used once (the one slot without workers)
    tick, used = time.perf_counter(), cpu_seconds()
    stream = loader.share_batches(entry, plans, workers, prefetch=PREFETCH)
    for index, batch in enumerate(stream):
        if augment:
            loader.device_batch(batch, cpu, buffers)
        if index + 1 == warm_up:
            start = time.perf_counter()
            pids = [process.pid for process in multiprocessing.active_children()]
        if index == len(plans) - 2:
            worker_pss = [pss_mib(pid) for pid in pids]
    seconds = time.perf_counter() - start
    images = sum(len(plan.pairs) for plan in plans[warm_up:])
    every = sum(len(plan.pairs) for plan in plans)  # CPU time includes the workers' start and first round
    return {"img_s": images / seconds, "img_cpu_s": every / (cpu_seconds() - used),
            "startup_s": start - tick, "worker_pss_mib": worker_pss}  # fmt: skip


def milliseconds(work) -> float:  # noqa: ANN001 -- a callable
    """Median wall milliseconds of ``work()`` over five calls, after one warm-up."""
    work()
    times = []
    for _ in range(5):
        tick = time.perf_counter()
        work()
        times.append(time.perf_counter() - tick)
    return float(np.median(times)) * 1e3


def breakdown(entry: cache.ImageCache, plan: loader.BatchPlan) -> dict[str, float]:
    """Milliseconds of the CPU-torch steps after the gather on one batch (see the module docstring)."""
    cpu, buffers = torch.device("cpu"), loader.BatchBuffers()
    held = {
        key: value.clone() for key, value in next(iter(loader.share_batches(entry, [plan], 0, 1))).items()
    }
    flat = {**held, "angles": torch.zeros_like(held["angles"])}
    count, size = len(plan.pairs), entry.masks.shape[-1]
    images, masks = torch.rand(count, 3, size, size) * 255, torch.rand(count, 1, size, size).round() * 255
    flips = torch.from_numpy(plan.flips)

    def rotate() -> None:
        grid = loader.rotation_grid(held["angles"], flips, size, size)
        F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)

    out = [torch.empty(count, 3, size, size), torch.empty(count, 1, size, size)]
    steps = {"flip/convert/normalise": milliseconds(lambda: loader.device_batch(flat, cpu, buffers))}
    if bool(plan.angles.any()):
        steps["rotation (grid + 2 grid_sample)"] = milliseconds(rotate)
    steps["device_batch (all of it)"] = milliseconds(lambda: loader.device_batch(held, cpu, buffers))
    steps["floor: write the float outputs once"] = milliseconds(lambda: [tensor.fill_(1.0) for tensor in out])
    return steps


def measure(name: str, size: int, batches: int, workers: int, work: Path) -> dict:
    module, (groups, per_group), keys = SETUPS[name]
    spec = synth.SynthSpec(name=f"Bench{groups}x{per_group}", n_groups=groups, images_per_group=per_group,
                           height=size, width=size, seed=0)  # fmt: skip
    root = work / spec.name
    if not root.exists():
        synth.write_dataset(root, spec)
    dataset = GroupDataset(root, spec.name, size)
    cfg = {"seed": 0, "augment": True, "categories": [], **keys}
    if module is rcgs:
        cfg["categories"] = rcgs.prepare_config({**cfg, "size": size}, dataset)["categories"]
    epoch = loader.epoch_plan(module, dataset, cfg, 0)
    plans = (epoch * batches)[:batches]
    streamed_count = max(4 * batches, 20) + workers * PREFETCH + 1  # steady state after a round over the ring
    streamed = (epoch * streamed_count)[:streamed_count]
    tick = time.perf_counter()
    entry = cache.open_or_build(dataset, work / "cache", workers=2, progress=False)
    build = time.perf_counter() - tick
    where = [(group, index) for group in dataset.groups for index in range(len(dataset.items[group]))]
    for group, index in where:  # the previous path's in-memory decode, outside the timing
        dataset.image(group, index), dataset.mask(group, index)
    held = sum(array.nbytes for array in [*dataset._images.values(), *dataset._masks.values()])

    before = rate(lambda plan: previous_batch(dataset, where, plan), plans)
    inline = stream_rate(entry, streamed, 0, augment=True)  # as train.py with loader_workers 0
    pss = pss_mib()
    gathered = stream_rate(entry, streamed, 0, augment=False)
    pooled = stream_rate(entry, streamed, workers, augment=True)
    host = stream_rate(entry, streamed, workers, augment=False)
    cached = entry.images.nbytes + entry.masks.nbytes
    steps = {
        "gather (in-process)": 1e3 * len(plans[0].pairs) / gathered["img_s"],
        **breakdown(entry, plans[0]),
    }
    largest = max(len(plan.pairs) for plan in streamed)
    ring = (workers * PREFETCH + 1) * largest * size * size * 4  # uint8 RGB + mask per image and slot
    return {"model": name, "images": len(dataset), "batch": len(plans[0].pairs),
            "previous_img_s": before[0], "previous_img_cpu_s": before[1],
            "inline_img_s": inline["img_s"], "inline_img_cpu_s": inline["img_cpu_s"],
            "workers_img_s": pooled["img_s"], "workers_img_cpu_s": pooled["img_cpu_s"],
            "host_img_s": host["img_s"], "host_img_cpu_s": host["img_cpu_s"],
            "startup_s": pooled["startup_s"], "cache_build_s": build, "pss_mib": pss,
            "worker_pss_mib": host["worker_pss_mib"], "cache_mib": cached / 2**20,
            "previous_held_mib": held / 2**20, "ring_mib": ring / 2**20, "steps_ms": steps}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes (>= 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads here (0: torch's default)")
    args = parser.parse_args()
    if args.threads:  # on a busy machine one thread avoids waiting on a descheduled second one in every op
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, size {args.size}, "
          f"{args.workers} loader workers")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for name in SETUPS:
            row = measure(name, args.size, args.batches, max(1, args.workers), Path(folder))
            wall, cpu = row["previous_img_s"], row["previous_img_cpu_s"]
            print(f"{row['model']} (batch {row['batch']}, {row['images']} images)")
            for label, key in (("previous path", "previous"), ("new, in-process", "inline"),
                               ("new, workers", "workers"), ("host delivery (feeds a GPU)", "host")):  # fmt: skip
                print(f"  {label:28s} {row[key + '_img_s']:9.1f} img/s x{row[key + '_img_s'] / wall:5.1f}   "
                      f"{row[key + '_img_cpu_s']:9.1f} img/CPU-s x{row[key + '_img_cpu_s'] / cpu:5.1f}")  # fmt: skip
            for step, ms in row["steps_ms"].items():
                print(f"    {step:34s} {ms:8.1f} ms/batch = {1e3 * row['batch'] / ms:9.1f} img/s alone")
            workers_pss = ", ".join(f"{value:.0f}" for value in row["worker_pss_mib"])
            rank = row["pss_mib"] + sum(row["worker_pss_mib"])
            print(f"  start (workers + first round over the ring) {row['startup_s']:.2f} s; cache build "
                  f"{row['cache_build_s']:.1f} s, {row['cache_mib']:.0f} MiB once per machine (previous path: "
                  f"{row['previous_held_mib']:.0f} MiB per rank); ring {row['ring_mib']:.0f} MiB per rank; PSS trainer "
                  f"{row['pss_mib']:.0f} MiB + workers [{workers_pss}] MiB = {rank:.0f} MiB per rank")  # fmt: skip


if __name__ == "__main__":
    main()
