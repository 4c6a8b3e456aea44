"""CBCS speed on one core: images per second of ``co_saliency`` on synthetic 300x400 groups.

    python benchmarks/cbcs_speed.py [--groups 3] [--images 6] [--height 300] [--width 400] [--repeats 3]
                                    [--folder DIR]

Images come from ``cosalbench.datasets.synth`` (default) or, with ``--folder``, from the sorted
image files of DIR (natural photos have many more distinct colours), resized to height x width.

Pins the process to one CPU and one thread (BLAS, OpenCV), runs each group ``--repeats`` times and
reports the best repeat per group (the least disturbed by other processes) and the overall rate,
with its ratio to the 5 images/s target of issue 7, by wall clock and by process CPU time (the
latter is what one core delivers when other jobs share the machine).
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from cosalbench import io, layout  # noqa: E402
from cosalbench.baselines.cbcs import co_saliency  # noqa: E402
from cosalbench.datasets import synth  # noqa: E402

TARGET_IMAGES_PER_SECOND = 5.0


def _synth_groups(args: argparse.Namespace) -> dict[str, list[np.ndarray]]:
    spec = synth.SynthSpec(
        n_groups=args.groups, images_per_group=args.images, height=args.height, width=args.width
    )
    groups: dict[str, list[np.ndarray]] = {}
    for sample in synth.generate(spec):
        groups.setdefault(sample.group, []).append(sample.image)
    return groups


def _folder_groups(args: argparse.Namespace) -> dict[str, list[np.ndarray]]:
    paths = [p for p in sorted(args.folder.iterdir()) if layout.is_image_file(p)]
    paths = paths[: args.groups * args.images]
    if len(paths) < args.groups * args.images:
        raise SystemExit(f"{args.folder}: {len(paths)} images, need {args.groups * args.images}")
    images = [
        cv2.resize(io.read_bgr(p), (args.width, args.height), interpolation=cv2.INTER_AREA) for p in paths
    ]
    return {
        f"{args.folder.name}[{g}]": images[g * args.images : (g + 1) * args.images]
        for g in range(args.groups)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--images", type=int, default=6, help="images per group")
    parser.add_argument("--height", type=int, default=300)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="take images from this folder")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)

    groups = _folder_groups(args) if args.folder else _synth_groups(args)
    co_saliency(next(iter(groups.values()))[:2])  # warm-up: imports, caches

    total_images, total_wall, total_cpu = 0, 0.0, 0.0
    for name, images in groups.items():
        wall, cpu = float("inf"), float("inf")
        for _ in range(args.repeats):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            co_saliency(images)
            wall = min(wall, time.perf_counter() - wall_start)
            cpu = min(cpu, time.process_time() - cpu_start)
        total_images += len(images)
        total_wall += wall
        total_cpu += cpu
        print(
            f"{name:<18} {len(images)} images  wall {wall:6.3f} s ({len(images) / wall:6.2f} images/s)"
            f"  cpu {cpu:6.3f} s ({len(images) / cpu:6.2f} images/s)"
        )
    for label, seconds in (("wall clock", total_wall), ("CPU time", total_cpu)):
        rate = total_images / seconds
        print(
            f"CBCS {args.height}x{args.width}, {total_images} images, one core, {label}: {rate:.2f} images/s "
            f"({rate / TARGET_IMAGES_PER_SECOND:.2f}x the {TARGET_IMAGES_PER_SECOND:g} images/s target)"
        )


if __name__ == "__main__":
    main()
