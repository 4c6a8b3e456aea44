"""The per-image scores of one evaluation as arrays: a row per image, a column per measure.

The protocols score image by image (:class:`~cosalbench.metrics.protocols.ImageScores`); averaging,
listing NaN images and writing the per-image CSV work on whole columns, so an evaluation keeps its
scores as one :class:`ScoreTable`. It is also what a worker process sends back: a few arrays pickle
cheaply, where thousands of small dicts do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cosalbench.metrics.protocols import CURVE_KEYS, SCALAR_KEYS, ImageScores


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
    def concat(cls, tables: Sequence[ScoreTable]) -> ScoreTable:
        """The rows of every table, one table after the other."""
        confusion = None if tables[0].confusion is None else np.concatenate([t.confusion for t in tables])
        return cls(
            np.concatenate([t.scalars for t in tables]),
            np.concatenate([t.scalar_defined for t in tables]),
            np.concatenate([t.curves for t in tables]),
            np.concatenate([t.curve_defined for t in tables]),
            confusion,
        )

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

    def curve(self, key: str) -> np.ndarray:
        """One curve of every image, a contiguous ``(n, n_thresholds)`` array."""
        return np.ascontiguousarray(self.curves[:, CURVE_KEYS.index(key)])
