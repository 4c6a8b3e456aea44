"""End-to-end ``evaluate`` time against the bare time to decode the same PNG pairs.

Builds a CoSOD3k-sized synthetic set in a temporary folder (default 3,316 GT/prediction pairs of
300x400 in 160 groups; 64 distinct smooth maps encoded once and written under every name), then
times, in this run and on this machine:

* bare decode: ``cv2.imread(gt, IMREAD_GRAYSCALE)`` and ``cv2.imread(pred, IMREAD_GRAYSCALE)`` for
  every pair, one process (best of two passes, one before and one after the evaluations);
* ``evaluate_predictions`` (pysodmetrics protocol, no weighted F, no progress bar, no output files)
  with 1 worker and with ``--workers`` workers.

Both wall-clock and CPU seconds (this process plus its workers) are printed: on a shared, loaded
machine the CPU ratio is the stable figure, the wall ratio of the parallel run needs idle cores.

Usage: ``python benchmarks/evaluate_speed.py [--pairs 3316] [--groups 160] [--workers 2]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from cosalbench import io
from cosalbench.metrics.evaluate import evaluate_predictions

DATASET = "Bench"
METHOD = "method"
DISTINCT = 64


def _map_pair(rng: np.random.Generator, height: int, width: int) -> tuple[bytes, bytes]:
    """A GT with a few ellipses and a smooth, imperfect prediction of it, as PNG bytes."""
    gt = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.integers(40, width - 40)), int(rng.integers(40, height - 40)))
        axes = (int(rng.integers(15, 90)), int(rng.integers(15, 70)))
        cv2.ellipse(gt, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    coarse = cv2.resize(rng.random((6, 8)), (width, height), interpolation=cv2.INTER_CUBIC)
    pred = 0.8 * cv2.GaussianBlur(gt / 255.0, (0, 0), sigmaX=6) + 0.25 * coarse
    pred = np.round(np.clip(pred, 0, 1) * 255).astype(np.uint8)
    return io.encode_image(gt, ".png"), io.encode_image(pred, ".png")


def build_set(root: Path, pairs: int, groups: int, height: int, width: int) -> list[tuple[Path, Path]]:
    """Write the set under ``root`` (data root ``root/data``, method folder ``root/preds/method``)."""
    rng = np.random.default_rng(0)
    pool = [_map_pair(rng, height, width) for _ in range(DISTINCT)]
    files = []
    for index in range(pairs):
        group, stem = f"group {index % groups:03d}", f"{index // groups:04d}"
        gt_path = root / "data" / "gts" / DATASET / group / f"{stem}.png"
        pred_path = root / "preds" / METHOD / DATASET / group / f"{stem}.png"
        gt_bytes, pred_bytes = pool[index % DISTINCT]
        for path, data in ((gt_path, gt_bytes), (pred_path, pred_bytes)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        files.append((gt_path, pred_path))
    return files


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextlib.contextmanager
def _timer(record: list[tuple[float, float]]) -> Iterator[None]:
    """Append (wall seconds, CPU seconds) of the block to ``record``."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    yield
    record.append((time.perf_counter() - wall, _cpu_seconds() - cpu))


def time_decode(files: list[tuple[Path, Path]]) -> tuple[float, float]:
    """(wall, CPU) seconds to decode every pair as 8-bit grey with cv2.imread, one process."""
    record: list[tuple[float, float]] = []
    with _timer(record):
        for gt_path, pred_path in files:
            cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            cv2.imread(str(pred_path), cv2.IMREAD_GRAYSCALE)
    return record[0]


def time_evaluate(root: Path, workers: int) -> tuple[float, float]:
    """(wall, CPU incl. workers) seconds of one ``evaluate_predictions`` call (results kept in memory)."""
    record: list[tuple[float, float]] = []
    with _timer(record):
        evaluate_predictions(
            root / "preds" / METHOD, [DATASET], data_root=root / "data", workers=workers, progress=False
        )
    return record[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3316)
    parser.add_argument("--groups", type=int, default=160)
    parser.add_argument("--height", type=int, default=300)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="cosalbench-bench-") as tmp:
        root = Path(tmp)
        files = build_set(root, args.pairs, args.groups, args.height, args.width)
        decodes = [time_decode(files)]
        single = time_evaluate(root, 1)
        parallel = time_evaluate(root, args.workers)
        decodes.append(time_decode(files))
    decode = (min(w for w, _ in decodes), min(c for _, c in decodes))
    n = len(files)
    print(
        f"{n} pairs of {args.height}x{args.width} in {args.groups} groups, protocol pysodmetrics, {os.cpu_count()} CPUs"
    )
    print(f"{'':<32}{'wall s':>8}{'pairs/s':>9}{'x decode':>10}{'CPU s':>8}{'x decode':>10}")
    rows = [
        ("bare decode (cv2.imread x2)", decode),
        ("evaluate, 1 worker", single),
        (f"evaluate, {args.workers} workers", parallel),
    ]
    for label, (wall, cpu) in rows:
        print(
            f"{label:<32}{wall:8.2f}{n / wall:9.0f}{wall / decode[0]:9.2f}x{cpu:8.2f}{cpu / decode[1]:9.2f}x"
        )
    print("(wall ratios are only meaningful on an otherwise idle machine; CPU ratios count all processes)")


if __name__ == "__main__":
    main()
