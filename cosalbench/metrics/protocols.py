"""The three evaluation conventions live in CoSOD papers, each reproducing one reference exactly.

* ``pysodmetrics`` -- PySODMetrics 1.6.2 (PySODEvalToolkit, MCCL, most recent SOD/CoSOD work).
* ``eval-co-sod`` -- zzhanghub/eval-co-sod (GICD, GCoNet, GCoNet+ published numbers).
* ``cosal-matlab`` -- Fan's Matlab CoSal benchmark (CoSOD3k), group-mean by default.

Each protocol reads files the way its reference does, scores one (prediction, GT) pair from a single
joint level histogram (see :mod:`cosalbench.metrics.histogram`) and names the aggregation its reference
uses. ``docs/metrics.md`` lists every convention and where the protocols differ.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from cosalbench import io
from cosalbench.errors import CosalbenchError
from cosalbench.imresize import imresize
from cosalbench.metrics import confusion, measures, weighted_f
from cosalbench.metrics.histogram import (
    at_or_above,
    class_quadrant_index,
    count_levels,
    tail_sums,
    threshold_cuts,
)
from cosalbench.metrics.score_table import CURVE_KEYS, SCALAR_KEYS, ImageScores, ScoreTable

PROTOCOLS = ("pysodmetrics", "eval-co-sod", "cosal-matlab")
AGGREGATIONS = ("image_mean", "group_mean")
_BATCH_LEVELS = 128 * 256  # prediction rows x grey levels scored in one vectorised batch


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """One GT mask analysed once for every prediction scored against it (see :meth:`Protocol.prepare`).

    Holds what depends on the GT alone: its foreground count, the S-measure quadrant split, the
    per-pixel histogram bin (class and quadrant), and, when the weighted F is asked for, its distance
    transform terms.
    """

    shape: tuple[int, int]
    n_fg: int
    split: tuple[int, int]
    hist_index: np.ndarray = field(repr=False)
    n_classes: int
    wfm: bool = False
    weighted_f: weighted_f.WeightedFGround | None = field(default=None, repr=False)
    confusion: tuple[str, ...] = ()  # FmeasureV2 handlers to compute (see cosalbench.metrics.confusion)
    classes: np.ndarray | None = field(default=None, repr=False)  # soft GT: the grey level of each class
    present: list[int] | None = None  # soft GT: the grey levels it holds


@dataclass(frozen=True, eq=False)
class Protocol:
    """A named evaluation convention: how to read files, score a pair and aggregate."""

    name: str
    default_aggregation: str
    thresholds: np.ndarray = field(repr=False)

    def read_gt(self, path: str | Path) -> np.ndarray:
        """The GT array the reference builds from the file (uint8, H x W)."""
        raise NotImplementedError

    def read_pred(self, path: str | Path, gt_shape: tuple[int, int]) -> np.ndarray:
        """The prediction converted to one channel and resized to ``gt_shape`` as the reference does."""
        raise NotImplementedError

    def prepare(self, gt: np.ndarray, *, wfm: bool = False, confusion: tuple[str, ...] = ()) -> GroundTruth:
        """Analyse a GT (as returned by ``read_gt``) once for any number of predictions.

        ``confusion`` names FmeasureV2 handlers to compute too, where the protocol defines them.
        """
        raise NotImplementedError

    def score_prepared(self, pred: np.ndarray, ground: GroundTruth) -> ImageScores:
        """Score one prediction (as returned by ``read_pred``) against a prepared GT."""
        raise NotImplementedError

    def check_prediction(self, pred: np.ndarray, ground: GroundTruth) -> None:
        """Raise CosalbenchError unless ``pred`` can be scored against ``ground`` (shape, dtype)."""
        _check_pred(pred, ground.shape, (np.uint8,))

    def score_many(self, preds: Sequence[np.ndarray], ground: GroundTruth) -> list[ImageScores]:
        """:meth:`score_prepared` of several predictions of one GT."""
        return [self.score_prepared(pred, ground) for pred in preds]

    def score_table(self, preds: Sequence[np.ndarray], ground: GroundTruth) -> ScoreTable:
        """The scores of several predictions of one GT as a table, a row per prediction in order."""
        return self.score_tables([(preds, ground)])

    def score_tables(self, items: Sequence[tuple[Sequence[np.ndarray], GroundTruth]]) -> ScoreTable:
        """:meth:`score_table` of several GTs' predictions ``[(preds, ground), ...]`` as one table, GT by
        GT (protocols may vectorise across GTs too)."""
        scores = [score for preds, ground in items for score in self.score_many(preds, ground)]
        return ScoreTable.of(scores, len(self.thresholds))

    def score(
        self, pred: np.ndarray, gt: np.ndarray, *, wfm: bool = False, confusion: tuple[str, ...] = ()
    ) -> ImageScores:
        """Score one prediction against its GT (both as returned by ``read_pred``/``read_gt``)."""
        return self.score_prepared(pred, self.prepare(gt, wfm=wfm, confusion=confusion))

    def auc(self, tpr: np.ndarray, fpr: np.ndarray) -> float | None:
        """AUC of (mean) ROC curves in ascending threshold order, or None where the reference has none."""
        return measures.trapezoid_auc(tpr, fpr)


def _check_gt(gt: np.ndarray) -> None:
    if gt.ndim != 2:
        raise CosalbenchError(None, f"expected a 2-D GT array, got shape {gt.shape}")
    if gt.size == 0:
        raise CosalbenchError(None, "empty image (0 pixels)")
    if gt.dtype != np.uint8:
        raise CosalbenchError(None, f"GT dtype {gt.dtype} is not uint8")


def _check_pred(pred: np.ndarray, gt_shape: tuple[int, ...], dtypes: tuple[type, ...]) -> None:
    if pred.ndim != 2:
        raise CosalbenchError(None, f"expected a 2-D prediction array, got shape {pred.shape}")
    if pred.shape != tuple(gt_shape):
        raise CosalbenchError(None, f"prediction shape {pred.shape} differs from GT shape {tuple(gt_shape)}")
    if pred.dtype.type not in dtypes:
        raise CosalbenchError(
            None, f"prediction dtype {pred.dtype} is not one of {[d.__name__ for d in dtypes]}"
        )


def _line_counts(mask: np.ndarray, axis: int) -> np.ndarray:
    """Foreground pixels per row (``axis=1``) or per column (``axis=0``) of a bool mask."""
    return cv2.reduce(mask.view(np.uint8), axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()


def _mean_std(level_counts: np.ndarray, values: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and population std of the normalised map, from its level counts."""
    mean = float(np.dot(level_counts, values)) / n
    var = float(np.dot(level_counts, (values - mean) ** 2)) / n
    return mean, math.sqrt(var)


# ---------------------------------------------------------------------------------------------------
# Binary-GT protocols: pysodmetrics and cosal-matlab


@dataclass(frozen=True, eq=False)
class _BinaryGTProtocol(Protocol):
    """Shared scoring for the two conventions that binarise the GT at > 128 and use float64."""

    pred_dtypes: tuple[type, ...] = (np.uint8,)
    e_strict: bool = False  # E binarised with ``>`` (Matlab) instead of ``>=``
    clamp_adaptive_e: bool = True  # adaptive E threshold min(2 mean, 1) (PySOD) or 2 mean (Matlab)
    empty_wfm: float = 0.0
    confusion_measures: bool = False  # whether FmeasureV2's measures are defined (PySODMetrics only)

    def values(self, lo: int, hi: int, n_levels: int) -> np.ndarray:
        """Per-level normalised prediction values (min-max stretched as the reference does)."""
        raise NotImplementedError

    def curve_keys(self, values: np.ndarray) -> np.ndarray:
        """Per-level values compared against ``thresholds`` to draw the curves."""
        return values

    def centroid(self, counts: np.ndarray) -> int:
        """Quadrant split (1-based count of leading rows/columns) along one axis."""
        raise NotImplementedError

    def map_means(
        self, values: np.ndarray, present: np.ndarray, preds: Sequence[np.ndarray], means: np.ndarray
    ) -> np.ndarray:
        """Means of the normalised maps used by the adaptive thresholds, given the histogram means.

        ``values`` is ``(M, L)``, ``present`` whether each level occurs in each map, ``means`` ``(M,)``.
        """
        return means

    def constant_mean(
        self, values: np.ndarray, preds: Sequence[np.ndarray], splits: Sequence[tuple[int, int]]
    ) -> Callable | None:
        """Override ``(m, q) -> mean`` for a constant quadrant ``q`` of prediction ``m``, whose GT splits at
        ``splits[m]`` (None: the level value)."""
        return None

    def prepare(self, gt: np.ndarray, *, wfm: bool = False, confusion: tuple[str, ...] = ()) -> GroundTruth:
        _check_gt(gt)
        mask = np.greater(gt, 128)
        rows = _line_counts(mask, 1)
        n_fg = int(rows.sum())
        split = (
            (0, 0) if n_fg in (0, gt.size) else (self.centroid(rows), self.centroid(_line_counts(mask, 0)))
        )
        terms = weighted_f.ground_terms(mask) if wfm else None
        index = class_quadrant_index(mask, 2, split)
        handlers = tuple(confusion) if self.confusion_measures else ()
        return GroundTruth(gt.shape, n_fg, split, index, 2, wfm, terms, confusion=handlers)

    def check_prediction(self, pred: np.ndarray, ground: GroundTruth) -> None:
        _check_pred(pred, ground.shape, self.pred_dtypes)

    def score_prepared(self, pred: np.ndarray, ground: GroundTruth) -> ImageScores:
        return self.score_table([pred], ground).image(0)

    def score_many(self, preds: Sequence[np.ndarray], ground: GroundTruth) -> list[ImageScores]:
        table = self.score_table(preds, ground)
        return [table.image(row) for row in range(len(preds))]

    def score_tables(self, items: Sequence[tuple[Sequence[np.ndarray], GroundTruth]]) -> ScoreTable:
        rows = [(pred, ground) for preds, ground in items for pred in preds]
        if not rows:
            return super().score_tables(items)
        for pred, ground in rows:
            self.check_prediction(pred, ground)
        by_dtype: dict[np.dtype, list[int]] = {}
        for index, (pred, _) in enumerate(rows):
            by_dtype.setdefault(pred.dtype, []).append(index)
        batches = []
        for indices in by_dtype.values():
            n_levels = 256 if rows[indices[0]][0].dtype == np.uint8 else 65536
            size = max(1, _BATCH_LEVELS // n_levels)
            for start in range(0, len(indices), size):
                part = indices[start : start + size]
                preds, grounds = zip(*(rows[index] for index in part), strict=True)
                batches.append((part, self._score_rows(preds, grounds, n_levels)))
        if len(batches) == 1:
            return batches[0][1]
        table = ScoreTable.empty(len(rows), batches[0][1])
        for part, batch in batches:
            table.assign(np.array(part), batch)
        return table

    def _score_rows(
        self, preds: Sequence[np.ndarray], grounds: Sequence[GroundTruth], n_levels: int
    ) -> ScoreTable:
        """Scores of M predictions of one dtype, row m against ``grounds[m]``, every per-level
        computation vectorised over the rows (per-GT numbers become ``(M, 1)`` columns)."""
        if len({ground.confusion for ground in grounds}) > 1:
            raise ValueError("GTs prepared for different FmeasureV2 measures cannot share one table")
        n_maps = len(preds)
        shapes = [ground.shape for ground in grounds]
        splits = [ground.split for ground in grounds]
        n = np.array([h * w for h, w in shapes], dtype=np.float64)
        n_fg = np.array([ground.n_fg for ground in grounds], dtype=np.float64)
        n_col, fg_col = n[:, None], n_fg[:, None]
        quadrants = np.stack(
            [
                count_levels(pred, ground.hist_index, 8, n_levels, np.float64)
                for pred, ground in zip(preds, grounds, strict=True)
            ]
        )
        quadrants = quadrants.reshape(n_maps, 4, 2, n_levels)
        totals = quadrants[:, 0] + quadrants[:, 1]  # (M, (bg, fg), levels)
        totals += quadrants[:, 2]
        totals += quadrants[:, 3]
        level_counts = totals[:, 0] + totals[:, 1]
        present = level_counts > 0
        lows = np.argmax(present, axis=1).tolist()
        highs = (n_levels - 1 - np.argmax(present[:, ::-1], axis=1)).tolist()
        tables = [_level_tables(self, lo, hi, n_levels) for lo, hi in zip(lows, highs, strict=True)]
        values, curve_cuts, strict_curve_cuts = (np.stack(column) for column in zip(*tables, strict=True))
        tails = tail_sums(totals)

        hist_mean = (level_counts * values).sum(axis=-1) / n
        centred = values - hist_mean[:, None]
        std = np.sqrt((level_counts * (centred * centred)).sum(axis=-1) / n)
        mean = self.map_means(values, present, preds, hist_mean)
        n_curve = self.thresholds.size
        # F-type binarisations: the curve, adaptive 2*mean, mean + std (cosalbench's adpfm_meanstd)
        extra = np.stack([np.minimum(2 * mean, 1.0), np.minimum(hist_mean + std, 1.0)], axis=1)
        f_cuts = np.concatenate([curve_cuts, threshold_cuts(values, extra)], axis=1)
        bg, fg = np.moveaxis(at_or_above(tails, f_cuts), 1, 0)
        precision, recall, fm = measures.precision_recall_f(fg, fg + bg, fg_col)
        # E binarisations: the curve and the adaptive threshold
        e_threshold = np.minimum(2 * mean, 1.0) if self.clamp_adaptive_e else 2 * mean
        e_cuts = f_cuts[:, : n_curve + 1].copy()
        e_cuts[:, n_curve] = threshold_cuts(values, e_threshold[:, None], strict=self.e_strict)[:, 0]
        if self.e_strict:
            e_cuts[:, :n_curve] = strict_curve_cuts
        e_bg, e_fg = np.moveaxis(at_or_above(tails, e_cuts), 1, 0)
        em = measures.e_measure_binary(e_fg, e_bg, fg_col, n_col)
        tpr, fpr = measures.roc_rates(fg[:, :n_curve], bg[:, :n_curve], fg_col, n_col - fg_col)
        curves = (precision, recall, fm, em, tpr, fpr)  # in CURVE_KEYS order, each (M, >= n_curve)

        mae = ((totals[:, 0] * values).sum(axis=-1) + (totals[:, 1] * (1 - values)).sum(axis=-1)) / n
        sm = np.where(n_fg == 0, 1 - hist_mean, hist_mean)  # an all-background or all-foreground GT
        regular = np.flatnonzero((n_fg > 0) & (n_fg < n)).tolist()
        if regular:
            some = regular if len(regular) < n_maps else slice(None)
            chosen = [preds[m] for m in regular]
            constant_mean = self.constant_mean(values[some], chosen, [splits[m] for m in regular])
            sm[some] = measures.s_measures(
                quadrants[some],
                values[some],
                [shapes[m] for m in regular],
                [splits[m] for m in regular],
                constant_mean=constant_mean,
            )
        auc = self.auc(tpr, fpr)
        wfm = [math.nan] * n_maps  # NaN and undefined (below) where a GT was prepared without it
        for start, stop in _runs_of_one_ground(grounds):
            if grounds[start].wfm:
                wfm[start:stop] = weighted_f.weighted_f_many(
                    preds[start:stop], values[start:stop], grounds[start].weighted_f, empty=self.empty_wfm
                )
        summaries = measures.curve_summaries({"fm": fm[:, :n_curve], "em": em[:, :n_curve]})
        columns = {
            "sm": sm,
            "mae": mae,
            "adpem": em[:, n_curve],
            "adpfm": fm[:, n_curve],
            "adpfm_meanstd": fm[:, n_curve + 1],
            "auc": auc,
            "wfm": wfm,
            **summaries,
        }
        scalars = np.empty((n_maps, len(SCALAR_KEYS)))
        defined = np.empty((n_maps, len(SCALAR_KEYS)), bool)
        for j, key in enumerate(SCALAR_KEYS):
            column = columns[key]
            defined[:, j] = column is not None
            scalars[:, j] = math.nan if column is None else column
        defined[:, SCALAR_KEYS.index("wfm")] = [ground.wfm for ground in grounds]
        curve_table = np.empty((n_maps, len(CURVE_KEYS), n_curve))
        for j, curve in enumerate(curves):
            curve_table[:, j] = curve[:, :n_curve]
        rows = None
        if grounds[0].confusion:
            rows = np.stack(
                [self._confusion_row(m, values, tails, fg, bg, grounds[m]) for m in range(n_maps)]
            )
        return ScoreTable(scalars, defined, curve_table, np.ones((n_maps, len(CURVE_KEYS)), bool), rows)

    def _confusion_row(
        self,
        m: int,
        values: np.ndarray,
        tails: np.ndarray,
        fg: np.ndarray,
        bg: np.ndarray,
        ground: GroundTruth,
    ) -> np.ndarray:
        """The FmeasureV2 row of prediction ``m`` from its curve, adaptive and 0.5-binary counts."""
        n_curve = self.thresholds.size
        cut = threshold_cuts(values[m], np.array([0.5]), strict=True)
        binary = at_or_above(tails[m], cut)[::-1, 0]
        curve = np.stack([fg[m, :n_curve], bg[m, :n_curve]])
        adaptive = np.array([fg[m, n_curve], bg[m, n_curve]])
        return confusion.image_row(
            ground.confusion, curve, adaptive, binary, ground.n_fg, math.prod(ground.shape)
        )


def _runs_of_one_ground(grounds: Sequence[GroundTruth]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive rows scored against the same GT object."""
    starts = [row for row in range(len(grounds)) if row == 0 or grounds[row] is not grounds[row - 1]]
    return list(zip(starts, [*starts[1:], len(grounds)], strict=True))


def _level_tables(protocol: _BinaryGTProtocol, lo: int, hi: int, n_levels: int) -> tuple[np.ndarray, ...]:
    """Per-level values and the curve's cut levels (``>=`` and ``>``) for a map spanning levels lo..hi.

    They depend on (lo, hi) only, and most 8-bit maps share a few ranges (often 0..255): those are cached.
    """
    if n_levels == 256:
        return _cached_level_tables(protocol, lo, hi)
    return _compute_level_tables(protocol, lo, hi, n_levels)


@functools.lru_cache(maxsize=4096)
def _cached_level_tables(protocol: _BinaryGTProtocol, lo: int, hi: int) -> tuple[np.ndarray, ...]:
    return _compute_level_tables(protocol, lo, hi, 256)


def _compute_level_tables(
    protocol: _BinaryGTProtocol, lo: int, hi: int, n_levels: int
) -> tuple[np.ndarray, ...]:
    values = protocol.values(lo, hi, n_levels)
    keys = protocol.curve_keys(values)
    tables = (
        values,
        threshold_cuts(keys, protocol.thresholds),
        threshold_cuts(keys, protocol.thresholds, strict=True),
    )
    for table in tables:
        table.flags.writeable = False
    return tables


def _quadrant_slices(split: tuple[int, int]) -> tuple[tuple[slice, slice], ...]:
    y, x = split
    return (
        (slice(0, y), slice(0, x)),
        (slice(0, y), slice(x, None)),
        (slice(y, None), slice(0, x)),
        (slice(y, None), slice(x, None)),
    )


def _read_gray(path: str | Path) -> np.ndarray:
    """:func:`io.read_gray`, decoded by ``cv2.imread`` straight from the file (no Python-side copy of the
    bytes, about a tenth of the decode time saved); a file it cannot decode goes through
    :func:`io.read_gray` for its one-line error."""
    with io.quiet_opencv():
        image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    return image if image is not None else io.read_gray(path)


_GREY_8BIT = np.arange(256) / 255  # PySOD's ``pred / 255`` of each grey level
_GREY_8BIT.flags.writeable = False


@dataclass(frozen=True, eq=False)
class PySODMetricsProtocol(_BinaryGTProtocol):
    """PySODMetrics 1.6.2: cv2 grey reading, 256 uint8 bins with ``>=``, float64, flat mean."""

    def read_gt(self, path: str | Path) -> np.ndarray:
        return _read_gray(path)

    def read_pred(self, path: str | Path, gt_shape: tuple[int, int]) -> np.ndarray:
        pred = _read_gray(path)
        if pred.shape != tuple(gt_shape):
            # PySODMetrics raises on a size mismatch; PySODEvalToolkit (image mode) resizes like this.
            pred = cv2.resize(pred, (gt_shape[1], gt_shape[0]), interpolation=cv2.INTER_LINEAR)
        return pred

    def values(self, lo: int, hi: int, n_levels: int) -> np.ndarray:
        base = _GREY_8BIT
        if hi == lo:
            return base
        return (base - base[lo]) / (base[hi] - base[lo])

    def curve_keys(self, values: np.ndarray) -> np.ndarray:
        # PySOD's histogram bin ``trunc(255 v)`` of each level, divided by 255 again: ``bin / 255 >= k / 255``
        # holds exactly when ``bin >= k``, so the thresholds stay the curve's x values k / 255. Levels
        # absent from the image (outside [0, 1] after stretching) are clipped to keep the table monotone.
        return np.clip(values * 255, 0, 255).astype(np.uint8) / 255

    def centroid(self, counts: np.ndarray) -> int:
        return measures.centroid_half_even(counts)

    def map_means(
        self, values: np.ndarray, present: np.ndarray, preds: Sequence[np.ndarray], means: np.ndarray
    ) -> np.ndarray:
        on_threshold = present & (np.abs(values - 2 * means[:, None]) <= 1e-12)
        means = means.copy()
        for m in np.flatnonzero(on_threshold.any(axis=1)).tolist():
            # a level sits on the adaptive threshold: decide it with numpy's own summation, as PySOD does
            means[m] = float(np.mean(values[m][preds[m]]))
        return means

    def constant_mean(
        self, values: np.ndarray, preds: Sequence[np.ndarray], splits: Sequence[tuple[int, int]]
    ) -> Callable:
        def numpy_mean(m: int, quadrant: int) -> float:
            # PySOD's ``np.mean`` of a constant slice may miss the level by an ulp, which turns that
            # quadrant's SSIM from 1 into 0; reproduce it on the same array layout.
            return float(np.mean(values[m][preds[m]][_quadrant_slices(splits[m])[quadrant]]))

        return numpy_mean


def _matlab_colon_thresholds() -> np.ndarray:
    """Matlab's ``1:-1/255:0`` (computed symmetrically from both ends), in ascending order."""
    step = 1 / 255
    k = np.arange(256)
    descending = np.where(k <= 127, 1 - k * step, (255 - k) * step)
    return descending[::-1].copy()


def _matlab_rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """Matlab ``rgb2gray`` for uint8 input (ITU-R 601 weights, rounded half away)."""
    weights = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    grey = rgb[..., :3].astype(np.float64) @ weights
    return np.clip(np.floor(grey + 0.5), 0, 255).astype(np.uint8)


def _open_pil(path: str | Path) -> Image.Image:
    """Open and decode an image with Pillow; CosalbenchError on a missing or corrupt file."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError as exc:
        raise CosalbenchError(path, "file not found") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise CosalbenchError(path, "not a readable image (corrupt or unsupported format)") from exc
    return image


def _matlab_imread(path: str | Path) -> np.ndarray:
    """What Matlab's ``imread`` returns: indices for palette images, uint16 for 16-bit grey, 0/255 for 1-bit."""
    image = _open_pil(path)
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * np.uint8(255)
    if image.mode in ("L", "P", "RGB", "RGBA", "LA"):
        return np.asarray(image)
    if image.mode.startswith("I"):
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    return np.asarray(image.convert("RGB"))


@dataclass(frozen=True, eq=False)
class CosalMatlabProtocol(_BinaryGTProtocol):
    """Fan's Matlab CoSal benchmark: first channel, imresize, mapminmax, ``1:-1/255:0``, E with ``>``."""

    def read_gt(self, path: str | Path) -> np.ndarray:
        gt = _matlab_imread(path)
        if gt.ndim == 3:
            gt = _matlab_rgb2gray(gt) if gt.shape[2] >= 3 else gt[..., 0]
        return np.where(gt > 128, 255, 0).astype(np.uint8)

    def read_pred(self, path: str | Path, gt_shape: tuple[int, int]) -> np.ndarray:
        pred = _matlab_imread(path)
        if pred.ndim == 3:
            pred = np.ascontiguousarray(pred[..., 0])
        if pred.shape != tuple(gt_shape):
            pred = imresize(pred, tuple(gt_shape))
        return pred

    def values(self, lo: int, hi: int, n_levels: int) -> np.ndarray:
        base = np.arange(n_levels) / (n_levels - 1)  # im2double
        if hi == lo:
            return base  # mapminmax leaves a constant row unchanged
        gain = 1 / (base[hi] - base[lo])
        return (base - base[lo]) * gain

    def centroid(self, counts: np.ndarray) -> int:
        return measures.centroid_half_away(counts)

    def auc(self, tpr: np.ndarray, fpr: np.ndarray) -> float | None:
        return None


# ---------------------------------------------------------------------------------------------------
# eval-co-sod


def _eval_co_sod_thresholds() -> np.ndarray:
    """``torch.linspace(0, 1 - 1e-10, 255)`` in float32 (1 - 1e-10 rounds to 1), as torch's CPU kernel
    computes it: ``start + step * i`` for the first half, ``end - step * (n - 1 - i)`` (one rounding)
    for the second."""
    n = 255
    step = np.float32(1.0) / np.float32(n - 1)
    i = np.arange(n)
    first = (step * i.astype(np.float32)).astype(np.float32)
    second = (1.0 - np.float64(step) * (n - 1 - i)).astype(np.float32)
    return np.where(i < n // 2, first, second).astype(np.float32)


_TO_TENSOR = np.arange(256, dtype=np.float32) / np.float32(255)  # torchvision ToTensor of uint8
_EVAL_EPS = 1e-20


@dataclass(frozen=True, eq=False)
class EvalCoSODProtocol(Protocol):
    """eval-co-sod: PIL ``convert('L')``, soft GT, 255 float32 thresholds, raw-map MAE, no adaptive metrics."""

    def read_gt(self, path: str | Path) -> np.ndarray:
        return np.asarray(_open_pil(path).convert("L"))

    def read_pred(self, path: str | Path, gt_shape: tuple[int, int]) -> np.ndarray:
        pred = _open_pil(path).convert("L")
        size = (gt_shape[1], gt_shape[0])
        if pred.size != size:
            pred = pred.resize(size, Image.BILINEAR)
        return np.asarray(pred)

    def prepare(self, gt: np.ndarray, *, wfm: bool = False, confusion: tuple[str, ...] = ()) -> GroundTruth:
        _check_gt(gt)
        h, w = gt.shape
        gt_levels = cv2.calcHist([gt], [0], None, [256], [0, 256]).ravel()
        present_gt = np.flatnonzero(gt_levels)
        mask = np.greater_equal(gt, 128)  # soft value >= 0.5 in float32
        if present_gt.size <= 2 and set(present_gt.tolist()) <= {0, 255}:
            classes, gt_class = np.array([0, 255]), mask
        else:
            lookup = np.zeros(256, dtype=np.intp)
            lookup[present_gt] = np.arange(present_gt.size)
            classes, gt_class = present_gt, lookup[gt]
        rows = _line_counts(mask, 1)
        n_fg = int(rows.sum())
        if n_fg == 0:
            split = (round(h / 2), round(w / 2))
        else:
            cols = _line_counts(mask, 0)
            split = (measures.centroid_float32_no_offset(rows), measures.centroid_float32_no_offset(cols))
        index = class_quadrant_index(gt_class, classes.size, split)
        return GroundTruth(
            gt.shape, n_fg, split, index, classes.size, classes=classes, present=present_gt.tolist()
        )

    def score_prepared(self, pred: np.ndarray, ground: GroundTruth) -> ImageScores:
        self.check_prediction(pred, ground)
        h, w = ground.shape
        n = h * w
        split, classes = ground.split, ground.classes
        quadrants = count_levels(pred, ground.hist_index, 4 * classes.size, 256).reshape(4, classes.size, 256)
        totals = quadrants.sum(axis=0)  # (G, 256)
        level_counts = totals.sum(axis=0)
        present = np.flatnonzero(level_counts)
        raw = _TO_TENSOR
        lo, hi = raw[present[0]], raw[present[-1]]
        values32 = (raw - lo) / (np.float32(hi - lo) + np.float32(_EVAL_EPS))
        values = values32.astype(np.float64)
        gt_values32 = _TO_TENSOR[classes]
        gt_values = gt_values32.astype(np.float64)
        class_totals = totals.sum(axis=1)

        cuts = threshold_cuts(values32, self.thresholds)
        positives = at_or_above(tail_sums(totals), cuts)  # (G, 255)
        tp = gt_values @ positives
        n_positive = positives.sum(axis=0)
        gt_sum = float(gt_values @ class_totals)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (n_positive + _EVAL_EPS)
            recall = tp / (gt_sum + _EVAL_EPS)
            fm = (1 + measures.BETA2) * precision * recall / (measures.BETA2 * precision + recall)
        fm[np.isnan(fm)] = 0
        fp = (1 - gt_values) @ positives
        bg_sum = float((1 - gt_values) @ class_totals)
        tpr = tp / (gt_sum + _EVAL_EPS)
        fpr = fp / (bg_sum + _EVAL_EPS)
        em = measures.e_measure_soft(positives, class_totals, gt_values, _EVAL_EPS)
        curves = {"precision": precision, "recall": recall, "fm": fm, "em": em, "tpr": tpr, "fpr": fpr}

        abs_diff = np.abs(raw[None, :] - gt_values32[:, None]).astype(np.float64)
        mae = float((abs_diff * totals).sum()) / n
        map_mean = float(np.dot(level_counts, values)) / n
        if ground.present == [0]:
            sm = 1 - map_mean
        elif ground.present == [255]:
            sm = map_mean
        else:
            is_fg = classes >= 128
            binary = np.stack([quadrants[:, ~is_fg].sum(axis=1), quadrants[:, is_fg].sum(axis=1)], axis=1)
            sm = measures.s_measure(binary, values, (h, w), split, eps=_EVAL_EPS, single_std=math.nan)
        scalars: dict[str, float | None] = {
            "sm": float(sm),
            "mae": mae,
            "adpem": None,
            "adpfm": None,
            "adpfm_meanstd": None,
            "auc": self.auc(tpr, fpr),
            "wfm": None,
        }
        scalars.update(measures.curve_summary(curves))
        return ImageScores({key: scalars[key] for key in SCALAR_KEYS}, curves)


_REGISTRY: dict[str, Protocol] = {
    "pysodmetrics": PySODMetricsProtocol(
        "pysodmetrics", "image_mean", np.arange(256) / 255, confusion_measures=True
    ),
    "eval-co-sod": EvalCoSODProtocol("eval-co-sod", "image_mean", _eval_co_sod_thresholds()),
    "cosal-matlab": CosalMatlabProtocol(
        "cosal-matlab",
        "group_mean",
        _matlab_colon_thresholds(),
        pred_dtypes=(np.uint8, np.uint16),
        e_strict=True,
        clamp_adaptive_e=False,
        empty_wfm=math.nan,
    ),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (one of PROTOCOLS)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CosalbenchError(
            None, f"unknown protocol {name!r}", f"use one of {', '.join(PROTOCOLS)}"
        ) from None
