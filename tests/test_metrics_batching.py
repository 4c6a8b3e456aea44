"""Scoring many GTs' predictions in one vectorised call gives, bit for bit, the scores of one pair at a time.

``evaluate`` hands each protocol a whole chunk (several GTs, each with every method's map) through
``Protocol.score_tables``; the binary-GT protocols then turn every per-GT number into a per-row column.
Any row mixing would change a number, so each row is compared exactly against scoring its pair alone,
on GTs of different sizes, with empty and full GTs, constant maps and empty quadrants side by side.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from cosalbench.metrics.protocols import get_protocol
from cosalbench.metrics.score_table import CURVE_KEYS, SCALAR_KEYS, ScoreTable
from tests.test_metrics_pysod_parity import degenerate_pairs, random_pairs

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, NaN where the other is NaN."""
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _groups(cases: list, per_gt: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Each case's GT with its own prediction and ``per_gt - 1`` transformed ones (same shape)."""
    groups = []
    for index, (_, pred, gt) in enumerate(cases):
        maps = [pred, 255 - pred, np.roll(pred, index % 5, axis=1), np.full_like(pred, index * 37 % 256)]
        groups.append((gt, maps[:per_gt]))
    return groups


@pytest.mark.parametrize("protocol", ["pysodmetrics", "cosal-matlab", "eval-co-sod"])
@pytest.mark.parametrize("per_gt", [1, 4])
def test_chunk_rows_equal_pairs_scored_alone(protocol: str, per_gt: int) -> None:
    spec = get_protocol(protocol)
    measures = ("iou", "dice") if protocol == "pysodmetrics" else ()
    groups = _groups(degenerate_pairs() + random_pairs(seed=3, n=35), per_gt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = [(maps, spec.prepare(gt, wfm=True, confusion=measures)) for gt, maps in groups]
        table = spec.score_tables(items)
        alone = [spec.score(pred, gt, wfm=True, confusion=measures) for gt, maps in groups for pred in maps]
    assert len(table) == len(alone) == sum(len(maps) for _, maps in groups)
    expected = ScoreTable.of(alone, len(spec.thresholds))
    assert np.array_equal(table.scalar_defined, expected.scalar_defined)
    assert np.array_equal(table.curve_defined, expected.curve_defined)
    for j, key in enumerate(SCALAR_KEYS):
        assert _same(table.scalars[:, j], expected.scalars[:, j]), key
    for j, key in enumerate(CURVE_KEYS):
        assert _same(table.curves[:, j], expected.curves[:, j]), key
    if measures:
        assert _same(table.confusion, expected.confusion)
    else:
        assert table.confusion is None


def test_mixed_bit_depths_keep_row_order() -> None:
    """cosal-matlab scores 8- and 16-bit maps of several GTs in separate batches, rows back in order."""
    spec = get_protocol("cosal-matlab")
    groups = _groups(random_pairs(seed=4, n=6), 2)
    items = []
    for index, (gt, maps) in enumerate(groups):
        deep = maps[1].astype(np.uint16) * 257 + index
        items.append(([maps[0], deep], spec.prepare(gt)))
    table = spec.score_tables(items)
    alone = ScoreTable.of([spec.score_prepared(pred, ground) for maps, ground in items for pred in maps], 256)
    assert _same(table.scalars, alone.scalars) and _same(table.curves, alone.curves)


def test_table_rows_read_back_as_image_scores() -> None:
    spec = get_protocol("pysodmetrics")
    _, pred, gt = random_pairs(seed=5, n=1)[0]
    ground = spec.prepare(gt)
    table = spec.score_table([pred, 255 - pred], ground)
    first = table.image(0)
    assert first.scalars["wfm"] is None and set(first.scalars) == set(SCALAR_KEYS)
    assert all(isinstance(value, float) for key, value in first.scalars.items() if key != "wfm")
    assert first.scalars == spec.score_prepared(pred, ground).scalars
    inverted = (255 - pred) / 255.0
    if inverted.max() > inverted.min():  # PySODMetrics stretches the map to [0, 1]
        inverted = (inverted - inverted.min()) / (inverted.max() - inverted.min())
    mae = float(np.mean(np.abs(inverted - (gt > 128))))
    assert math.isclose(table.image(1).scalars["mae"], mae, rel_tol=0, abs_tol=1e-12)
    empty = ScoreTable.empty(3, table)
    empty.assign(np.array([2, 0]), table)
    assert _same(empty.scalars[[2, 0]], table.scalars)
