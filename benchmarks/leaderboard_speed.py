"""Leaderboard-scale ``evaluate``: many methods on one dataset, against PySODMetrics and the bare decode.

Builds a CoSOD3k-sized synthetic set in a temporary folder (default 3,316 GT masks of 300x400 in 160
groups, and 10 methods each predicting every mask; 64 distinct GTs and, per method, 64 distinct maps,
each encoded once and hard-linked under every name), then times, in this run and on this machine:

* bare decode: ``cv2.imread(..., IMREAD_GRAYSCALE)`` of each GT once and each prediction once;
* the PySODMetrics 1.6.2 loop a user writes today, per (method, image): decode the GT and the
  prediction, then ``MAE``, ``Smeasure``, ``Emeasure``, ``Fmeasure`` and ``WeightedFmeasure``. It costs
  about 30 ms a pair, so by default it runs on ``--reference-pairs`` pairs spread evenly over methods
  and images and the per-pair time is multiplied by the number of pairs (printed as "extrapolated");
  ``--reference-pairs 0`` runs all of them;
* ``evaluate_predictions`` (protocol pysodmetrics, every method at once, results written to a
  temporary ``--out``) without and with the weighted F, in one process and then with ``--workers``.

Wall-clock and CPU seconds (this process plus its workers) are printed: on a shared, loaded machine the
CPU ratio is the stable figure; the wall ratio of the parallel run needs idle cores. ``--repeat N`` runs
every timing in N interleaved rounds and reports the fastest of each (timeit's rule: the other rounds
measure the machine's other load), the bare decode once more at the end.

Usage: ``python benchmarks/leaderboard_speed.py [--quick] [--pairs 3316] [--groups 160] [--methods 10]
[--workers N] [--reference-pairs 600] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from evaluate_speed import _timer

from cosalbench import io
from cosalbench.metrics.evaluate import evaluate_predictions
from cosalbench.parallel import available_cpus

DATASET = "Bench"
DISTINCT = 64


def _gt(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    gt = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.integers(40, width - 40)), int(rng.integers(40, height - 40)))
        axes = (int(rng.integers(15, 90)), int(rng.integers(15, 70)))
        cv2.ellipse(gt, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return gt


def _prediction(rng: np.random.Generator, gt: np.ndarray, method: int) -> np.ndarray:
    """A smooth, imperfect map of ``gt``; each method blurs, shifts and biases it its own way."""
    height, width = gt.shape
    coarse = cv2.resize(rng.random((6, 8)), (width, height), interpolation=cv2.INTER_CUBIC)
    shifted = np.roll(gt, (method % 5 - 2, method % 3 - 1), axis=(0, 1))
    pred = (0.9 - 0.03 * method) * cv2.GaussianBlur(
        shifted / 255.0, (0, 0), sigmaX=2 + method
    ) + 0.25 * coarse
    return np.round(np.clip(pred, 0, 1) * 255).astype(np.uint8)


def build_set(root: Path, pairs: int, groups: int, methods: int, height: int, width: int) -> list[list[Path]]:
    """Write the set under ``root`` (data root ``root/data``, methods ``root/preds/m<k>``).

    Returns one row per GT: ``[gt_path, pred_path of method 0, ...]``.
    """
    rng = np.random.default_rng(0)
    gts = [_gt(rng, height, width) for _ in range(DISTINCT)]
    sources = root / "sources"
    sources.mkdir(parents=True)
    encoded = []
    for index, gt in enumerate(gts):
        row = [sources / f"gt{index}.png"]
        row[0].write_bytes(io.encode_image(gt, ".png"))
        for method in range(methods):
            row.append(sources / f"m{method}-{index}.png")
            row[-1].write_bytes(io.encode_image(_prediction(rng, gt, method), ".png"))
        encoded.append(row)
    files = []
    for index in range(pairs):
        group, stem = f"group {index % groups:03d}", f"{index // groups:04d}"
        targets = [root / "data" / "gts" / DATASET / group / f"{stem}.png"]
        targets += [root / "preds" / f"m{m}" / DATASET / group / f"{stem}.png" for m in range(methods)]
        for source, target in zip(encoded[index % DISTINCT], targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
        files.append(targets)
    return files


def time_decode(files: list[list[Path]]) -> tuple[float, float]:
    """(wall, CPU) seconds to decode each GT and each prediction once as 8-bit grey, one process."""
    record: list[tuple[float, float]] = []
    with _timer(record):
        for row in files:
            for path in row:
                cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return record[0]


def time_pysodmetrics(files: list[list[Path]], sample: int) -> tuple[float, float, int]:
    """(wall, CPU, pairs timed) of the PySODMetrics loop on ``sample`` (method, image) pairs (0: all)."""
    import py_sod_metrics as psm

    pairs = [(row[0], pred) for row in files for pred in row[1:]]
    if 0 < sample < len(pairs):
        pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, sample).round().astype(int)]
    metrics = [psm.MAE(), psm.Smeasure(), psm.Emeasure(), psm.Fmeasure(), psm.WeightedFmeasure()]
    record: list[tuple[float, float]] = []
    with warnings.catch_warnings(), _timer(record):
        warnings.simplefilter("ignore")
        for gt_path, pred_path in pairs:
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            pred = cv2.imread(str(pred_path), cv2.IMREAD_GRAYSCALE)
            for metric in metrics:
                metric.step(pred, gt)
    return (*record[0], len(pairs))


def time_evaluate(root: Path, workers: int, wfm: bool) -> tuple[float, float]:
    """(wall, CPU incl. workers) seconds of one ``evaluate_predictions`` call over every method."""
    record: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(dir=root) as out, _timer(record):
        evaluate_predictions(
            root / "preds",
            [DATASET],
            data_root=root / "data",
            out=out,
            workers=workers,
            wfm=wfm,
            progress=False,
        )
    return record[0]


def _fastest(timings: list) -> tuple[float, float]:
    """The least wall and the least CPU seconds of several rounds of one timing."""
    return min(wall for wall, _ in timings), min(cpu for _, cpu in timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small set (320 masks, 16 groups, 3 methods)")
    parser.add_argument("--pairs", type=int, default=3316, help="GT masks")
    parser.add_argument("--groups", type=int, default=160)
    parser.add_argument("--methods", type=int, default=10)
    parser.add_argument("--height", type=int, default=300)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument(
        "--workers", type=int, default=available_cpus(), help="[default: every available CPU]"
    )
    parser.add_argument("--reference-pairs", type=int, default=600, help="PySODMetrics pairs timed (0: all)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of every timing; the fastest of each is reported"
    )
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.groups, args.methods, args.reference_pairs = 320, 16, 3, 60
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="cosalbench-leaderboard-") as tmp:
        root = Path(tmp)
        files = build_set(root, args.pairs, args.groups, args.methods, args.height, args.width)
        decodes, references, rounds = [], [], {}
        for _ in range(max(1, args.repeat)):
            decodes.append(time_decode(files))
            *timing, ref_pairs = time_pysodmetrics(files, args.reference_pairs)
            references.append(timing)
            for workers in dict.fromkeys((1, args.workers)):
                for wfm in (False, True):
                    rounds.setdefault((workers, wfm), []).append(time_evaluate(root, workers, wfm))
        decodes.append(time_decode(files))
    decode = _fastest(decodes)
    ref_wall, ref_cpu = _fastest(references)
    runs = {key: _fastest(timings) for key, timings in rounds.items()}
    n_pairs = args.pairs * args.methods
    scale = n_pairs / ref_pairs
    reference = (ref_wall * scale, ref_cpu * scale)
    print(
        f"{args.pairs} GT masks x {args.methods} methods = {n_pairs} pairs of {args.height}x{args.width} in "
        f"{args.groups} groups, protocol pysodmetrics, {os.cpu_count()} CPUs ({available_cpus()} available)"
    )
    extrapolated = f" (timed on {ref_pairs} pairs, x{scale:.1f})" if ref_pairs < n_pairs else ""
    print(f"PySODMetrics loop: {ref_wall / ref_pairs * 1e3:.2f} ms per pair{extrapolated}")
    if args.repeat > 1:
        print(f"fastest of {args.repeat} interleaved rounds of each timing ({args.repeat + 1} of the decode)")
    print(
        f"{'':<42}{'wall s':>9}{'ms/pair':>9}{'x decode':>10}{'CPU s':>9}{'x decode':>10}{'PySOD/this':>12}"
    )
    rows = [("bare decode (each file once)", decode), ("PySODMetrics loop, MAE S E F wF", reference)]
    for (workers, wfm), timing in runs.items():
        rows.append(
            (f"evaluate{' --wfm' if wfm else ''}, {workers} worker{'s' if workers > 1 else ''}", timing)
        )
    for label, (wall, cpu) in rows:
        print(
            f"{label:<42}{wall:9.2f}{wall / n_pairs * 1e3:9.3f}{wall / decode[0]:9.2f}x{cpu:9.2f}"
            f"{cpu / decode[1]:9.2f}x{reference[1] / cpu:11.1f}x"
        )
    print("(PySOD/this compares CPU seconds; wall ratios are only meaningful on an otherwise idle machine)")


if __name__ == "__main__":
    main()
