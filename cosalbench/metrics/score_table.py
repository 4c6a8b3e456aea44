"""Per-image scores: one image's (:class:`ImageScores`) and many images' as arrays (:class:`ScoreTable`).

A protocol scores the predictions of one GT straight into a :class:`ScoreTable` (a row per image, a
column per measure); averaging, listing NaN images and writing the per-image CSV work on whole columns,
so an evaluation keeps its scores as one table. It is also what a worker process sends back: a few
arrays pickle cheaply, where thousands of small dicts do not. :class:`ImageScores` is the one-image
view for callers that score a single pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCALAR_KEYS = (
    "sm",
    "mae",
    "maxem",
    "meanem",
    "adpem",
    "maxfm",
    "meanfm",
    "adpfm",
    "adpfm_meanstd",
    "auc",
    "wfm",
)
CURVE_KEYS = ("precision", "recall", "fm", "em", "tpr", "fpr")


@dataclass(frozen=True, eq=False)
class ImageScores:
    """Scores of one image: every SCALAR_KEY (None where undefined) and every CURVE_KEY (ascending thresholds)."""

    scalars: dict[str, float | None]
    curves: dict[str, np.ndarray]
    confusion: np.ndarray | None = None  # FmeasureV2 measures' row (confusion.image_row), when asked for


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Scores of ``n`` images: NaN with ``defined`` False where a measure is undefined."""

    scalars: np.ndarray  # (n, len(SCALAR_KEYS)) float64
    scalar_defined: np.ndarray  # (n, len(SCALAR_KEYS)) bool
    curves: np.ndarray  # (n, len(CURVE_KEYS), n_thresholds) float64
    curve_defined: np.ndarray  # (n, len(CURVE_KEYS)) bool
    confusion: np.ndarray | None = None  # (n, row length) FmeasureV2 rows, when asked for and defined

    def __len__(self) -> int:
        return len(self.scalars)

    @classmethod
    def of(cls, scores: Sequence[ImageScores], n_thresholds: int) -> ScoreTable:
        """The table of ``scores``, in their order (curves of ``n_thresholds`` points)."""
        n = len(scores)
        scalars = np.full((n, len(SCALAR_KEYS)), np.nan)
        scalar_defined = np.zeros((n, len(SCALAR_KEYS)), bool)
        curves = np.full((n, len(CURVE_KEYS), n_thresholds), np.nan)
        curve_defined = np.zeros((n, len(CURVE_KEYS)), bool)
        for i, score in enumerate(scores):
            for j, key in enumerate(SCALAR_KEYS):
                value = score.scalars.get(key)
                if value is not None:
                    scalars[i, j], scalar_defined[i, j] = value, True
            for j, key in enumerate(CURVE_KEYS):
                curve = score.curves.get(key)
                if curve is not None:
                    curves[i, j], curve_defined[i, j] = curve, True
        rows = [score.confusion for score in scores]
        confusion = np.stack(rows) if rows and rows[0] is not None else None
        return cls(scalars, scalar_defined, curves, curve_defined, confusion)

    @classmethod
    def empty(cls, n: int, like: ScoreTable) -> ScoreTable:
        """A table of ``n`` unfilled rows shaped like ``like``'s (same curves and confusion width)."""
        confusion = None if like.confusion is None else np.empty((n,) + like.confusion.shape[1:])
        return cls(
            np.empty((n,) + like.scalars.shape[1:]),
            np.empty((n,) + like.scalar_defined.shape[1:], bool),
            np.empty((n,) + like.curves.shape[1:]),
            np.empty((n,) + like.curve_defined.shape[1:], bool),
            confusion,
        )

    def assign(self, rows: np.ndarray, source: ScoreTable) -> None:
        """Fill the given rows (indices) of this table with ``source``'s rows, in order."""
        self.scalars[rows] = source.scalars
        self.scalar_defined[rows] = source.scalar_defined
        self.curves[rows] = source.curves
        self.curve_defined[rows] = source.curve_defined
        if self.confusion is not None:
            self.confusion[rows] = source.confusion

    def image(self, row: int) -> ImageScores:
        """One row as :class:`ImageScores` (None where a measure is undefined)."""
        scalars = {
            key: float(value) if defined else None
            for key, value, defined in zip(
                SCALAR_KEYS, self.scalars[row], self.scalar_defined[row], strict=True
            )
        }
        curves = {
            key: self.curves[row, j].copy() for j, key in enumerate(CURVE_KEYS) if self.curve_defined[row, j]
        }
        return ImageScores(scalars, curves, None if self.confusion is None else self.confusion[row].copy())

    def take(self, rows: np.ndarray) -> ScoreTable:
        """The given rows (indices), in that order."""
        confusion = None if self.confusion is None else self.confusion[rows]
        return ScoreTable(
            self.scalars[rows],
            self.scalar_defined[rows],
            self.curves[rows],
            self.curve_defined[rows],
            confusion,
        )

    def scalar(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, defined) of one scalar measure, each a contiguous ``(n,)`` array."""
        j = SCALAR_KEYS.index(key)
        return np.ascontiguousarray(self.scalars[:, j]), np.ascontiguousarray(self.scalar_defined[:, j])
