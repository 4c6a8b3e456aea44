"""Images/s the training data path delivers to the model, new path against the previous one, same run.

Both paths start from decoded uint8 images at the training size (the decode itself happens once in
either; the cache build is timed separately) and end with the batch the model trains on: normalised
float images, 0/1 masks, labels, augmentation included (GCoNet: flip p=0.5 + rotation in (-90, 90);
RCGS: flip p=0.5).

* previous path: per-pair dict of decoded arrays, PIL flip/rotate image by image, ``to_tensor_batch``
  (what the trainer did before the cache: one thread, every rank building every batch);
* new path: gather from the memory-mapped cache, then ``loader.device_batch`` (flips, rotation and
  normalisation as batched torch ops: on the CPU here, on the GPU in a real run).

Memory: the proportional set size (PSS) of this process, which counts the shared cache pages once
per machine divided among the processes mapping them. Run::

    python benchmarks/loader_speed.py [--batches 6] [--size 224]
"""

from __future__ import annotations

import argparse
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


def pss_mib() -> float:
    """Proportional set size of this process in MiB (Linux)."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
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


def rate(make, plans: list[loader.BatchPlan]) -> float:  # noqa: ANN001 -- a batch builder
    """Images per second of ``make(plan)`` over ``plans`` (after one warm-up batch)."""
    make(plans[0])
    start = time.perf_counter()
    for plan in plans:
        make(plan)
    return sum(len(plan.pairs) for plan in plans) / (time.perf_counter() - start)


def measure(name: str, size: int, batches: int, work: Path) -> dict:
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
    plans = (loader.epoch_plan(module, dataset, cfg, 0) * batches)[:batches]
    tick = time.perf_counter()
    entry = cache.open_or_build(dataset, work / "cache", workers=2, progress=False)
    build = time.perf_counter() - tick
    where = [(group, index) for group in dataset.groups for index in range(len(dataset.items[group]))]
    for group, index in where:  # the previous path's in-memory decode, outside the timing
        dataset.image(group, index), dataset.mask(group, index)
    cpu = torch.device("cpu")

    def new(plan: loader.BatchPlan) -> None:
        images, masks = entry.gather(plan.pairs)
        raw = {"images": torch.from_numpy(images), "masks": torch.from_numpy(masks),
               "labels": torch.from_numpy(np.asarray(plan.labels)),
               "flips": torch.from_numpy(plan.flips), "angles": torch.from_numpy(plan.angles)}  # fmt: skip
        loader.device_batch(raw, cpu)

    before, after = rate(lambda plan: previous_batch(dataset, where, plan), plans), rate(new, plans)
    return {"model": name, "images": len(dataset), "batch": len(plans[0].pairs), "previous_img_s": before,
            "new_img_s": after, "ratio": after / before, "cache_build_s": build, "pss_mib": pss_mib()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, size {args.size}")
    with tempfile.TemporaryDirectory() as folder:
        for name in SETUPS:
            row = measure(name, args.size, args.batches, Path(folder))
            print(f"{row['model']:12s} batch {row['batch']:3d}: previous {row['previous_img_s']:8.1f} img/s, "
                  f"new {row['new_img_s']:8.1f} img/s, x{row['ratio']:.1f}; cache build {row['cache_build_s']:.1f} s "
                  f"for {row['images']} images; PSS {row['pss_mib']:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
