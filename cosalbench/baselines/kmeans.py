"""The k-means++ bundled with the CBCS Matlab release, ported draw for draw.

Behaviour of the original (``kmeansPP.m``), kept here:

* the first centre is point ``round(u * (n - 1))``; every further centre is the first point ``p``
  with ``u < D_p / D_n``, where ``D`` is the cumulative sum, in point order, of each point's
  *distance* (not squared distance) to its current centre;
* points go to the centre maximising ``2 x.c - |c|^2``, ties to the lowest index;
* Lloyd iterations run until the labels stop changing (no cap in the original, no replicates);
* a run whose final labelling leaves a cluster empty restarts from the seeding, continuing the
  same draw stream; the remembered labels are not reset between restarts.

Deviation: ``k`` is capped at the number of distinct points (the original returns early with dummy
centres in that case, which crashes its multi-image path).

Speed: CBCS features are integer Lab triplets, so distinct vectors are far fewer than pixels.
Lloyd runs on the distinct vectors weighted by their counts; the seeding still sums distances over
every point in the original order, through the inverse index, so each draw picks the same point.
Centre sums of integer features are exact in float64, so the centres equal the original's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Lloyd always terminates; this only turns an impossible endless loop into a clear error.
MAX_LLOYD_ITERATIONS = 100_000
MAX_RESTARTS = 1_000
# Feature units: a point this much closer to its centre than to any other keeps it unscored
# (_lloyd). Safe while rounding errors of scores (~1e-16 |x|^2) stay far below its square, i.e.
# for features of magnitude up to ~1e4; CBCS's Lab values stay within +-130.
PRUNE_MARGIN = 1e-3


@dataclass(frozen=True)
class KMeansResult:
    """Labels (0-based, one per input point) and centres (``k x d``, the means of the labels)."""

    labels: np.ndarray
    centres: np.ndarray


def _scores(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``2 x.c - |c|^2`` per point and centre (``-inf`` for an empty, NaN centre).

    Written as d broadcast products rather than a matrix product: BLAS threads are slower than
    one core on these tall, 3-column products and oversubscribe the worker processes.
    """
    doubled = 2.0 * centres
    score = np.multiply.outer(points[:, 0], doubled[:, 0])
    for d in range(1, points.shape[1]):
        score += np.multiply.outer(points[:, d], doubled[:, d])
    score -= (centres * centres).sum(axis=1)[None, :]
    score[:, np.isnan(centres[:, 0])] = -np.inf
    return score


def _assign(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the best-scoring centre per point (ties go to the lowest index, as Matlab's ``max``)."""
    return np.argmax(_scores(points, centres), axis=1)


def _weighted_means(weighted: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Cluster means from ``weighted = weights * points`` (NaN for an empty cluster)."""
    mass = np.bincount(labels, weights=weights, minlength=k)
    sums = np.stack([np.bincount(labels, weights=column, minlength=k) for column in weighted.T], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / mass[:, None]


def distinct_rows(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(points, axis=0)`` with inverse and counts; fast for small integer features.

    Integer rows are packed into one integer key per row (first column most significant, so the
    order is the same lexicographic order); a dense count table replaces the sort when it is small against the point count.
    """
    low, high = points.min(axis=0), points.max(axis=0)
    spans = high - low + 1
    if not np.array_equal(points, np.round(points)) or float(np.prod(spans)) >= 2.0**62:
        distinct, inverse, counts = np.unique(points, axis=0, return_inverse=True, return_counts=True)
        return distinct, inverse.reshape(-1), counts
    strides = np.cumprod(np.concatenate([spans[1:], [1.0]])[::-1])[::-1].astype(np.int64)
    keys = (points - low).astype(np.int64) @ strides
    table_size = int(np.prod(spans))
    if table_size <= 4 * len(points):  # a dense count table beats sorting only for many points
        table = np.bincount(keys, minlength=table_size)
        present = np.flatnonzero(table)
        counts = table[present]
        slot = np.zeros(table_size, dtype=np.intp)
        slot[present] = np.arange(len(present))
        inverse = slot[keys]
    else:
        present, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    digits = (present[:, None] // strides[None, :]) % spans.astype(np.int64)[None, :]
    return digits + low[None, :], inverse, counts


def kmeans_pp(points: np.ndarray, k: int, uniform: Callable[[], float]) -> KMeansResult:
    """Cluster ``points`` (``n x d``, in the original's point order) into ``k`` clusters.

    ``uniform`` returns the next double in [0, 1) of the stream (``RandomState.random_sample``
    reproduces Matlab's default stream). Draws used: ``k`` per attempt.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"expected a non-empty (n, d) array, got shape {points.shape}")
    distinct, inverse, counts = distinct_rows(points)
    k = max(1, min(int(k), len(distinct)))
    weights = counts.astype(np.float64)
    n = len(points)
    previous: np.ndarray | None = None
    for _ in range(MAX_RESTARTS):
        labels, previous = _lloyd(distinct, weights, _seed(distinct, inverse, k, n, uniform), k, previous)
        if len(np.unique(labels)) == k:
            centres = _weighted_means(weights[:, None] * distinct, weights, labels, k)
            return KMeansResult(labels[inverse], centres)
    raise RuntimeError(f"k-means left a cluster empty in {MAX_RESTARTS} restarts")


def _lloyd(
    points: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int, previous: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations until the labels equal the remembered ones; returns (labels, remembered).

    Same labels as rescoring every point each iteration, faster: a point keeps its label unscored
    when an upper bound on the distance to its centre stays ``PRUNE_MARGIN`` below a lower bound on
    the distance to every other centre (bounds moved by the centres' drift, as in Hamerly's
    algorithm). Its score lead then exceeds ``PRUNE_MARGIN**2``, far above rounding error, so the
    full argmax would keep it too. Every other point is scored exactly.
    """
    weighted = weights[:, None] * points
    squared = (points * points).sum(axis=1)
    centres: np.ndarray | None = None
    upper = np.zeros(len(points))
    lower = np.zeros(len(points))
    for _ in range(MAX_LLOYD_ITERATIONS):
        if previous is not None and np.array_equal(labels, previous):
            return labels, previous
        previous = labels
        moved = _weighted_means(weighted, weights, labels, k)
        if centres is None:
            check = np.arange(len(points))
        else:
            drift = np.nan_to_num(np.sqrt(((moved - centres) ** 2).sum(axis=1)), nan=0.0)
            upper += drift[labels]
            lower -= drift.max()
            check = np.flatnonzero(upper + PRUNE_MARGIN >= lower)
        centres = moved
        score = _scores(points[check], centres)
        rows = np.arange(len(check))
        best = np.argmax(score, axis=1)
        labels = labels.copy()
        labels[check] = best
        # |x - c|^2 = |x|^2 - score; rounding errors of ~1e-11 stay far below PRUNE_MARGIN after sqrt
        upper[check] = np.sqrt(np.maximum(squared[check] - score[rows, best], 0.0))
        score[rows, best] = -np.inf
        runner_up = score.max(axis=1)  # -inf when there is no other centre
        lower[check] = np.sqrt(np.maximum(squared[check] - runner_up, 0.0))
    raise RuntimeError(f"k-means did not converge in {MAX_LLOYD_ITERATIONS} iterations")


def _seed(
    distinct: np.ndarray, inverse: np.ndarray, k: int, n: int, uniform: Callable[[], float]
) -> np.ndarray:
    """k-means++ seeding with distance-proportional draws; returns labels of the distinct vectors.

    Each new centre has the highest index, so the full relabelling reduces to moving the points
    whose score for it is strictly higher than their best so far (ties stay with the lower index).
    """
    first = inverse[int(np.floor(uniform() * (n - 1) + 0.5))]
    centres = distinct[[first]]
    labels = np.zeros(len(distinct), dtype=np.intp)
    best = _scores(distinct, centres)[:, 0]
    for index in range(1, k):
        gap = distinct - centres[labels]
        cumulative = np.cumsum(np.sqrt(np.einsum("ij,ij->i", gap, gap))[inverse])
        # k <= distinct vectors, so a point off every centre exists and the total is positive.
        chosen = int(np.searchsorted(cumulative / cumulative[-1], uniform(), side="right"))
        centres = np.vstack([centres, distinct[inverse[chosen]]])
        score = _scores(distinct, centres[index:])[:, 0]
        moved = score > best
        labels[moved] = index
        best[moved] = score[moved]
    return labels
