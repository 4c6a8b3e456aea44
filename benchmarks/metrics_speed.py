"""Classic-metric speed: cosalbench's histogram engine vs PySODMetrics 1.6.2, one process, same maps.

Generates N pairs of 300x400 uint8 maps (smooth blobs, noise, stretched ranges), then times
PySODMetrics' MAE, Smeasure, Emeasure and Fmeasure classes against ``Protocol.score`` of the
``pysodmetrics`` protocol (which computes the same numbers plus PR/ROC curves and adaptive variants),
prints both times and their ratio, and checks the dataset-level numbers agree to 1e-9.

    python benchmarks/metrics_speed.py [--n 200] [--height 300] [--width 400] [--seed 0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import cv2
import numpy as np

from cosalbench.metrics.aggregate import aggregate
from cosalbench.metrics.protocols import get_protocol


def make_pairs(n: int, height: int, width: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic (pred, gt) uint8 pairs: elliptic objects, blurred noisy predictions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    pairs = []
    for _ in range(n):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.05, 0.35) * height, rng.uniform(0.05, 0.35) * width
        gt = ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) < 1).astype(np.uint8) * 255
        shifted = np.roll(gt, (int(rng.integers(-10, 11)), int(rng.integers(-10, 11))), axis=(0, 1))
        soft = cv2.GaussianBlur(shifted.astype(np.float64), (0, 0), rng.uniform(1, 8))
        noisy = (
            soft * rng.uniform(0.5, 1.0) + rng.normal(0, rng.uniform(0, 30), soft.shape) + rng.uniform(0, 40)
        )
        pairs.append((np.clip(noisy, 0, 255).astype(np.uint8), gt))
    return pairs


def time_pysodmetrics(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict]:
    """Seconds for PySODMetrics' classic classes over all pairs, and their dataset results."""
    import py_sod_metrics as psm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mae, sm, em, fm = psm.MAE(), psm.Smeasure(), psm.Emeasure(), psm.Fmeasure()
        start = time.perf_counter()
        for pred, gt in pairs:
            mae.step(pred, gt)
            sm.step(pred, gt)
            em.step(pred, gt)
            fm.step(pred, gt)
        elapsed = time.perf_counter() - start
    e, f = em.get_results()["em"], fm.get_results()["fm"]
    results = {
        "sm": sm.get_results()["sm"],
        "mae": mae.get_results()["mae"],
        "adpem": e["adp"],
        "maxem": e["curve"].max(),
        "meanem": e["curve"].mean(),
        "adpfm": f["adp"],
        "maxfm": f["curve"].max(),
        "meanfm": f["curve"].mean(),
    }
    return elapsed, results


def time_cosalbench(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict]:
    """Seconds for cosalbench's ``score`` over all pairs (plus aggregation), and the dataset metrics."""
    protocol = get_protocol("pysodmetrics")
    start = time.perf_counter()
    rows = [protocol.score(pred, gt) for pred, gt in pairs]
    metrics = aggregate(rows, protocol)["metrics"]
    return time.perf_counter() - start, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--height", type=int, default=300)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; the best round of each side is reported"
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core for both sides: PySODMetrics is single-threaded numpy
    pairs = make_pairs(args.n, args.height, args.width, args.seed)
    time_cosalbench(pairs[:5])  # warm-up (imports, caches)
    cosal_time = ref_time = float("inf")
    for _ in range(args.repeat):  # alternate the two and keep each one's best round (shared machines)
        seconds, cosal = time_cosalbench(pairs)
        cosal_time = min(cosal_time, seconds)
        seconds, ref = time_pysodmetrics(pairs)
        ref_time = min(ref_time, seconds)
    worst = max(abs(cosal[key] - float(value)) for key, value in ref.items())
    print(
        f"{args.n} pairs of {args.height}x{args.width}, one process, one thread, best of {args.repeat} rounds"
    )
    print(
        f"PySODMetrics 1.6.2 (MAE, Smeasure, Emeasure, Fmeasure): {ref_time:8.3f} s  {ref_time / args.n * 1e3:7.2f} ms/image"
    )
    print(
        f"cosalbench score() (same metrics + PR/ROC/adaptive):    {cosal_time:8.3f} s  {cosal_time / args.n * 1e3:7.2f} ms/image"
    )
    print(f"speed-up: {ref_time / cosal_time:.1f}x   max |difference| over the dataset metrics: {worst:.2e}")
    if worst > 1e-9:
        raise SystemExit("results disagree beyond 1e-9")


if __name__ == "__main__":
    main()
