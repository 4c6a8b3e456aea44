"""Per-(method, image) scoring cost with the GT analysed once, without file decoding, in one process.

Uses the leaderboard benchmark's synthetic GTs and methods (300x400 by default) and times, per pair:

* ``Protocol.prepare`` once per GT (reported per GT, with and without the weighted F's GT-side terms);
* ``Protocol.score_tables`` of every method's map of each GT, a chunk of GTs per call as ``evaluate``
  does (reported per pair), without and with wF;
* PySODMetrics 1.6.2's ``MAE``, ``Smeasure``, ``Emeasure``, ``Fmeasure`` and ``WeightedFmeasure``
  ``step`` on the same arrays (reported per pair), the reference measured in the same run;
* the weighted F alone: ``weighted_f.ground_terms`` once per GT plus ``weighted_f.weighted_f_many`` of
  its maps (as ``evaluate`` scores them), against ``WeightedFmeasure.step`` per pair (``--methods 1``
  gives the single-method figure).

Best of ``--repeat`` passes (CPU seconds of this process), so a shared machine's noise mostly drops out.
Everything runs with one OpenCV and one BLAS thread, as ``evaluate`` scores.

Usage: ``python benchmarks/pair_scoring_speed.py [--gts 24] [--methods 10] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from leaderboard_speed import _gt, _prediction

from cosalbench.metrics.allocator import keep_freed_memory
from cosalbench.metrics.evaluate import MAX_CHUNK
from cosalbench.metrics.protocols import get_protocol
from cosalbench.parallel import single_threaded


def _weighted_f_alone(gts: list, preds: list, repeat: int) -> tuple[float, float]:
    """CPU seconds per pair of cosalbench's weighted F (``ground_terms`` once per GT, ``weighted_f_many``
    of its maps) and of PySODMetrics' ``WeightedFmeasure.step`` on the same arrays."""
    import py_sod_metrics as psm

    from cosalbench.metrics import weighted_f

    protocol = get_protocol("pysodmetrics")
    n_pairs = sum(len(maps) for maps in preds)
    # each map's per-level values, min-max stretched as PySODMetrics does (what evaluate passes)
    stretched = [
        np.stack([protocol.values(int(pred.min()), int(pred.max()), 256) for pred in maps]) for maps in preds
    ]

    def ours() -> None:
        for gt, maps, values in zip(gts, preds, stretched, strict=True):
            weighted_f.weighted_f_many(maps, values, weighted_f.ground_terms(gt > 128))

    def reference() -> None:
        metric = psm.WeightedFmeasure()
        for gt, maps in zip(gts, preds, strict=True):
            for pred in maps:
                metric.step(pred, gt)

    return best_of(repeat, ours) / n_pairs, best_of(1, reference) / n_pairs


def best_of(repeat: int, work) -> float:
    """Smallest CPU time of ``repeat`` runs of ``work()``."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gts", type=int, default=24)
    parser.add_argument("--methods", type=int, default=10)
    parser.add_argument("--height", type=int, default=300)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()  # as evaluate's scoring processes do
    rng = np.random.default_rng(0)
    gts = [_gt(rng, args.height, args.width) for _ in range(args.gts)]
    preds = [[_prediction(rng, gt, m) for m in range(args.methods)] for gt in gts]
    protocol = get_protocol("pysodmetrics")
    n_pairs = args.gts * args.methods
    rows = []
    for wfm in (False, True):
        grounds = [protocol.prepare(gt, wfm=wfm) for gt in gts]
        prepare = best_of(args.repeat, lambda wfm=wfm: [protocol.prepare(gt, wfm=wfm) for gt in gts])
        items = list(zip(preds, grounds, strict=True))
        per_chunk = -(-MAX_CHUNK // args.methods)  # GTs per chunk, as evaluate groups them
        chunks = [items[i : i + per_chunk] for i in range(0, len(items), per_chunk)]
        score = best_of(args.repeat, lambda chunks=chunks: [protocol.score_tables(c) for c in chunks])
        rows.append((wfm, prepare / args.gts, score / n_pairs))
    import py_sod_metrics as psm

    def reference() -> None:
        metrics = [psm.MAE(), psm.Smeasure(), psm.Emeasure(), psm.Fmeasure(), psm.WeightedFmeasure()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for gt, maps in zip(gts, preds, strict=True):
                for pred in maps:
                    for metric in metrics:
                        metric.step(pred, gt)

    ref = best_of(1, reference) / n_pairs
    wf_ours, wf_ref = _weighted_f_alone(gts, preds, args.repeat)
    print(f"{args.gts} GTs x {args.methods} methods of {args.height}x{args.width}, protocol pysodmetrics")
    print(f"{'':<24}{'prepare ms/GT':>15}{'score ms/pair':>15}{'all ms/pair':>13}{'PySOD/this':>12}")
    for wfm, prepare, score in rows:
        per_pair = score + prepare / args.methods
        print(
            f"{'with wF' if wfm else 'without wF':<24}{prepare * 1e3:15.3f}{score * 1e3:15.3f}"
            f"{per_pair * 1e3:13.3f}"
            + (f"{ref / per_pair:11.1f}x" if wfm else "")  # the reference includes the weighted F
        )
    print(f"{'PySODMetrics MAE S E F wF':<24}{'':>15}{'':>15}{ref * 1e3:13.3f}")
    print(
        f"weighted F alone, per pair: {wf_ours * 1e3:.3f} ms (GT terms shared by its {args.methods} "
        f"method{'s' if args.methods > 1 else ''}) vs {wf_ref * 1e3:.3f} ms for PySODMetrics' "
        f"WeightedFmeasure: {wf_ref / wf_ours:.1f}x"
    )


if __name__ == "__main__":
    with single_threaded():  # one OpenCV and one BLAS thread, as evaluate scores (and for the reference)
        main()
