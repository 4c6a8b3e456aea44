"""COCO-SEG build at COCO2017 scale: dry run on a full-size synthetic train2017, full build of a 5% slice.

The script synthesises, once (cached under ``$TMPDIR/cosalbench-coco-scale-v1``), an annotation file
shaped like ``instances_train2017.json``: 118,287 images, about 860,000 annotations (star-shaped
polygons, ~10% of them in two parts, ~1% crowd regions as uncompressed RLE) and a val2017 file of
5,000 images. It then runs the real command line in a subprocess and prints wall time and peak
memory against the issue's budgets (dry run < 60 s, full build < 600 s with 2 workers, < 8 GB):

1. ``build-coco-seg --dry-run`` on the full-size files (load, rule, digest, manifests of both splits);
2. ``build-coco-seg --splits train --workers 2`` on a 5% slice (every 20th image, a tiny JPEG
   hard-linked for each), extrapolated to the published 200,932 masks.

    python benchmarks/coco_seg_scale.py [--cache DIR] [--workers 2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cosalbench.datasets.coco_seg import PUBLISHED_GROUPS, PUBLISHED_N_PAIRS

N_TRAIN = 118_287
N_VAL = 5_000
SLICE_EVERY = 20
DROPPED = ((80, "toaster", 68), (89, "hair drier", 61))
CACHE_VERSION = "v1"


def _categories() -> tuple[list[dict], np.ndarray, np.ndarray]:
    """The 80 COCO categories and annotation sampling weights shaped like the published group sizes."""
    table = sorted(PUBLISHED_GROUPS + DROPPED)
    categories = [{"supercategory": "thing", "id": cid, "name": name} for cid, name, _ in table]
    ids = np.array([cid for cid, _, _ in table])
    weights = np.array([n for _, _, n in table], dtype=float) ** 0.8
    return categories, ids, weights / weights.sum()


def _polygon(rng: np.random.Generator, width: int, height: int) -> tuple[list[list[float]], float]:
    """One star-shaped polygon annotation (one or two parts) and its shoelace area."""
    parts, area = [], 0.0
    radius = float(np.exp(rng.uniform(np.log(2.0), np.log(140.0))))
    for _ in range(2 if rng.random() < 0.1 else 1):
        n = int(rng.integers(8, 40))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = radius * rng.uniform(0.7, 1.0, n)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        x = np.clip(cx + r * np.cos(angles), 0, width).round(2)
        y = np.clip(cy + r * np.sin(angles), 0, height).round(2)
        area += 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        parts.append(np.column_stack([x, y]).ravel().tolist())
    return parts, area


def _crowd(rng: np.random.Generator, width: int, height: int) -> tuple[dict, float]:
    """A crowd region as an uncompressed column-major RLE with ragged top and bottom edges."""
    x0 = int(rng.integers(0, width - 60))
    x1 = int(rng.integers(x0 + 40, min(width, x0 + 320)))
    y0 = int(rng.integers(0, height - 60))
    y1 = int(rng.integers(y0 + 40, height))
    cols = x1 - x0
    top = np.clip(y0 + rng.integers(0, 10, cols), 0, height - 1)
    bottom = np.clip(y1 - rng.integers(0, 10, cols), top + 1, height)
    ones = bottom - top
    zeros = np.empty(cols + 1, dtype=np.int64)
    zeros[0] = x0 * height + top[0]
    zeros[1:-1] = (height - bottom[:-1]) + top[1:]
    zeros[-1] = (height - bottom[-1]) + (width - x1) * height
    counts = np.empty(2 * cols + 1, dtype=np.int64)
    counts[0::2], counts[1::2] = zeros, ones
    return {"counts": counts.tolist(), "size": [height, width]}, float(ones.sum())


def synthesise(folder: Path, n_images: int, split: str, seed: int, slice_folder: Path | None) -> None:
    """Write ``annotations/instances_<split>2017.json`` (and the every-20th-image slice when asked)."""
    rng = np.random.default_rng(seed)
    categories, cat_ids, weights = _categories()
    image_ids = np.sort(rng.choice(600_000, n_images, replace=False)) + 1
    full_images, full_anns, slice_images, slice_anns = [], [], [], []
    ann_id = 0
    for index, image_id in enumerate(image_ids.tolist()):
        landscape = rng.random() < 0.7
        width, height = (
            (640, int(rng.integers(360, 481))) if landscape else (int(rng.integers(360, 481)), 640)
        )
        image = {"file_name": f"{image_id:012d}.jpg", "height": height, "width": width, "id": image_id}
        in_slice = slice_folder is not None and index % SLICE_EVERY == 0
        full_images.append(json.dumps(image))
        n_anns = 1 + int(rng.poisson(6.3))
        for category_id in rng.choice(cat_ids, n_anns, p=weights).tolist():
            ann_id += 1
            crowd = rng.random() < 0.011
            segmentation, area = _crowd(rng, width, height) if crowd else _polygon(rng, width, height)
            text = json.dumps(
                {"segmentation": segmentation, "area": round(area, 4), "iscrowd": int(crowd),
                 "image_id": image_id, "bbox": [0.0, 0.0, 1.0, 1.0], "category_id": category_id, "id": ann_id}
            )  # fmt: skip
            full_anns.append(text)
            if in_slice:
                slice_anns.append(text)
        if in_slice:
            slice_images.append(full_images[-1])
    _write(folder, split, full_images, full_anns, categories)
    if slice_folder is not None:
        _write(slice_folder, split, slice_images, slice_anns, categories)


def _write(folder: Path, split: str, images: list[str], anns: list[str], categories: list[dict]) -> None:
    path = folder / "annotations" / f"instances_{split}2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write('{"info": {"description": "synthetic COCO2017-scale file"}, "licenses": [], "images": [')
        handle.write(", ".join(images))
        handle.write('], "annotations": [')
        handle.write(", ".join(anns))
        handle.write('], "categories": ' + json.dumps(categories) + "}")
    os.replace(tmp, path)


def ensure_data(cache: Path) -> tuple[Path, Path]:
    """The full-size COCO folder and the 5% slice folder (with linked tiny JPEGs), made once."""
    full, sliced = cache / "full", cache / "slice"
    if not (cache / "done").is_file():
        print(f"synthesising COCO2017-scale annotations in {cache} (once) ...", flush=True)
        start = time.perf_counter()
        synthesise(full, N_TRAIN, "train", seed=0, slice_folder=sliced)
        synthesise(full, N_VAL, "val", seed=1, slice_folder=None)
        jpeg = cache / "tiny.jpg"
        jpeg.write_bytes(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
        images = json.loads((sliced / "annotations" / "instances_train2017.json").read_text())["images"]
        (sliced / "train2017").mkdir(parents=True, exist_ok=True)
        for image in images:
            os.link(jpeg, sliced / "train2017" / image["file_name"])
        (cache / "done").write_text("ok\n")
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    size = (full / "annotations" / "instances_train2017.json").stat().st_size
    print(f"train annotation file: {size / 1e6:.0f} MB", flush=True)
    return full, sliced


def _tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def run_measured(args: list[str]) -> tuple[float, float, int]:
    """Run the CLI; return wall seconds, CPU seconds (all processes) and peak process-tree RSS."""
    command = [sys.executable, "-m", "cosalbench.cli", *args]
    print("$ cosalbench " + " ".join(args), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"command failed with status {process.returncode}:\n{process.stderr.read()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / f"cosalbench-coco-scale-{CACHE_VERSION}"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the built outputs in the cache folder")
    options = parser.parse_args()
    full, sliced = ensure_data(options.cache)
    out = options.cache / "out"
    shutil.rmtree(out, ignore_errors=True)

    dry_wall, dry_cpu, dry_rss = run_measured(
        ["build-coco-seg", "--coco", str(full), "--data-root", str(out / "dry"), "--dry-run", "--no-progress"]
    )
    dry = json.loads((out / "dry" / "manifests" / "COCO-SEG.report.json").read_text())
    print(
        f"dry run (train + val, full size): wall {dry_wall:.1f} s, CPU {dry_cpu:.1f} s, peak RSS "
        f"{dry_rss / 2**30:.2f} GiB; {dry['n_groups']} groups, {dry['n_pairs']:,} train pairs"
    )
    print(f"  vs budgets: wall {dry_wall / 60:.2f}x of 60 s; memory {dry_rss / 2**30 / 8:.2f}x of 8 GB")

    build_args = ["build-coco-seg", "--coco", str(sliced), "--data-root", str(out / "build"), "--splits", "train",
                  "--min-group-size", str(100 // SLICE_EVERY), "--workers", str(options.workers), "--no-progress"]  # fmt: skip
    build_wall, build_cpu, build_rss = run_measured(build_args)
    report = json.loads((out / "build" / "manifests" / "COCO-SEG.report.json").read_text())
    masks = report["masks_written"]
    scale = PUBLISHED_N_PAIRS / masks
    projected = build_wall * scale + dry_wall
    print(
        f"5% slice build ({options.workers} workers): wall {build_wall:.1f} s, CPU {build_cpu:.1f} s for "
        f"{masks:,} masks ({masks / build_wall:.0f} masks/s), peak RSS {build_rss / 2**30:.2f} GiB"
    )
    print(
        f"  projected full build ({PUBLISHED_N_PAIRS:,} masks, plus the full-size load): wall {projected:.0f} s "
        f"= {projected / 600:.2f}x of the 600 s budget; CPU {build_cpu * scale + dry_cpu:.0f} s "
        f"(= {(build_cpu * scale + dry_cpu) / options.workers:.0f} s on {options.workers} idle cores)"
    )
    print(f"  parent memory of a full build ~ the dry run's ({dry_rss / 2**30:.2f} GiB) + workers")

    rerun_wall, _, _ = run_measured(build_args)
    print(f"rerun of the finished slice build (resume, nothing to write): wall {rerun_wall:.1f} s")
    if not options.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
