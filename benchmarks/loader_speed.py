"""Images/s the training data path delivers to the model, new path against the previous one, same run.

Every path starts from decoded uint8 images at the training size (the decode itself happens once in
either; the cache build is timed separately) and ends with the batch the model trains on: normalised
float images, 0/1 masks, labels, augmentation included (GCoNet: flip p=0.5 + rotation in (-90, 90);
RCGS: flip p=0.5).

* previous: per-pair dict of decoded arrays, PIL flip/rotate image by image, ``to_tensor_batch``
  (what the trainer did before the cache: one thread, every rank building every batch);
* new, in-process: gather from the memory-mapped cache, then ``loader.device_batch`` (flips,
  rotation and normalisation as batched torch ops: on the CPU here, on the GPU in a real run);
* new, workers: ``loader.share_batches`` worker processes gather the uint8 batches, the measuring
  process only runs ``device_batch`` on what arrives (a training rank's share of the work);
* host delivery: the worker processes' uint8 batches arriving in the measuring process, nothing
  else -- what feeds a GPU, whose ``device_batch`` runs on the device.

Worker rates are steady state (from the first batch received; starting the workers is printed
apart). Memory: the proportional set size (PSS) of each process, which counts the shared cache
pages once per machine divided among the processes mapping them; the previous path held its own
copy of the decoded set in every rank. Each rate is also given per CPU-second (this process and its
worker processes together), which other load on the machine disturbs much less than wall time; on a
shared machine compare the ratios within one run. Run::

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


def worker_rate(entry: cache.ImageCache, plans: list[loader.BatchPlan], workers: int, augment: bool) -> dict:
    """Steady-state images/s of ``share_batches`` batches arriving here (``device_batch`` applied here
    when ``augment``), the seconds until the first batch, and each worker's PSS near the end."""
    cpu = torch.device("cpu")
    tick, used = time.perf_counter(), cpu_seconds()
    stream = loader.share_batches(entry, plans, workers, prefetch=2)
    first = next(stream)
    pids = [process.pid for process in multiprocessing.active_children()]
    start = time.perf_counter()
    if augment:
        loader.device_batch(first, cpu)
    worker_pss: list[float] = []
    for index, batch in enumerate(stream, 1):
        if augment:
            loader.device_batch(batch, cpu)
        if index == len(plans) - 2:
            worker_pss = [pss_mib(pid) for pid in pids]
    seconds = time.perf_counter() - start
    images = sum(len(plan.pairs) for plan in plans[1:]) + (len(plans[0].pairs) if augment else 0)
    every = sum(len(plan.pairs) for plan in plans)  # CPU time includes the workers' start and first batch
    return {"img_s": images / seconds, "img_cpu_s": every / (cpu_seconds() - used),
            "startup_s": start - tick, "worker_pss_mib": worker_pss}  # fmt: skip


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
    streamed = (epoch * (batches + 4 * workers))[: batches + 4 * workers]  # workers need a few to fill up
    tick = time.perf_counter()
    entry = cache.open_or_build(dataset, work / "cache", workers=2, progress=False)
    build = time.perf_counter() - tick
    where = [(group, index) for group in dataset.groups for index in range(len(dataset.items[group]))]
    for group, index in where:  # the previous path's in-memory decode, outside the timing
        dataset.image(group, index), dataset.mask(group, index)
    held = sum(array.nbytes for array in [*dataset._images.values(), *dataset._masks.values()])
    cpu = torch.device("cpu")

    def new(plan: loader.BatchPlan) -> None:
        images, masks = entry.gather(plan.pairs, plan.flips)  # as a loader worker does
        raw = {"images": torch.from_numpy(images), "masks": torch.from_numpy(masks),
               "labels": torch.from_numpy(np.asarray(plan.labels)), "angles": torch.from_numpy(plan.angles)}  # fmt: skip
        loader.device_batch(raw, cpu)

    before = rate(lambda plan: previous_batch(dataset, where, plan), plans)
    inline = rate(new, plans)
    pss = pss_mib()
    pooled = worker_rate(entry, streamed, workers, augment=True)
    host = worker_rate(entry, streamed, workers, augment=False)
    cached = entry.images.nbytes + entry.masks.nbytes
    return {"model": name, "images": len(dataset), "batch": len(plans[0].pairs),
            "previous_img_s": before[0], "previous_img_cpu_s": before[1],
            "inline_img_s": inline[0], "inline_img_cpu_s": inline[1],
            "workers_img_s": pooled["img_s"], "workers_img_cpu_s": pooled["img_cpu_s"],
            "host_img_s": host["img_s"], "host_img_cpu_s": host["img_cpu_s"],
            "startup_s": pooled["startup_s"], "cache_build_s": build, "pss_mib": pss,
            "worker_pss_mib": host["worker_pss_mib"], "cache_mib": cached / 2**20,
            "previous_held_mib": held / 2**20}  # fmt: skip


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
            workers_pss = ", ".join(f"{value:.0f}" for value in row["worker_pss_mib"])
            print(f"  workers start {row['startup_s']:.2f} s; cache build {row['cache_build_s']:.1f} s, "
                  f"{row['cache_mib']:.0f} MiB once per machine (previous path: {row['previous_held_mib']:.0f} MiB "
                  f"per rank); PSS trainer {row['pss_mib']:.0f} MiB, workers [{workers_pss}] MiB")  # fmt: skip


if __name__ == "__main__":
    main()
