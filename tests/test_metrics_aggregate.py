"""Flat and per-group aggregation, and re-aggregation of group subsets from stored group rows only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.aggregate import MEAN_KEYS, aggregate, aggregate_groups, reaggregate
from cosalbench.metrics.protocols import CURVE_KEYS, PROTOCOLS, SCALAR_KEYS, get_protocol
from tests.test_metrics_pysod_parity import random_pairs

GROUP_SIZES = {"blue disc": 3, "Cat": 1, "apple": 4, "zebra": 2}


@pytest.fixture(scope="module", params=PROTOCOLS)
def grouped(request):
    protocol = get_protocol(request.param)
    names = [name for name, size in GROUP_SIZES.items() for _ in range(size)]
    rows = [protocol.score(pred, gt, wfm=True) for _, pred, gt in random_pairs(seed=7, n=len(names))]
    return protocol, rows, names


def test_structure_and_group_means(grouped) -> None:
    protocol, rows, names = grouped
    result = aggregate_groups(rows, names, protocol)
    assert list(result["groups"]) == sorted(GROUP_SIZES)
    assert {g: entry["n_images"] for g, entry in result["groups"].items()} == GROUP_SIZES
    for entry in result["groups"].values():
        assert set(entry["metrics"]) == set(SCALAR_KEYS)
        assert set(entry["curves"]) == set(CURVE_KEYS)
        assert len(entry["curves"]["fm"]) == protocol.thresholds.size
    assert result["image_mean"] == aggregate(rows, protocol)
    group_mean = result["group_mean"]
    for key in MEAN_KEYS:
        values = [entry["metrics"][key] for entry in result["groups"].values()]
        expected = None if None in values else pytest.approx(float(np.mean(values)), abs=1e-15)
        assert group_mean["metrics"][key] == expected, key
    mean_fm = np.mean([entry["curves"]["fm"] for entry in result["groups"].values()], axis=0)
    assert group_mean["metrics"]["maxfm"] == pytest.approx(mean_fm.max(), abs=1e-15)
    assert group_mean["metrics"]["meanfm"] == pytest.approx(mean_fm.mean(), abs=1e-15)
    assert group_mean["curves"]["threshold"] == pytest.approx(protocol.thresholds.tolist())
    flat_sm = float(np.mean([row.scalars["sm"] for row in rows]))
    assert result["image_mean"]["metrics"]["sm"] == pytest.approx(flat_sm, abs=1e-15)
    assert result["image_mean"]["metrics"]["sm"] != pytest.approx(group_mean["metrics"]["sm"], abs=1e-6)


@pytest.mark.parametrize(
    "subset", [("apple", "zebra"), ("Cat",), ("apple", "blue disc", "zebra"), tuple(GROUP_SIZES)]
)
def test_reaggregate_equals_aggregate_groups_on_the_subset(grouped, subset) -> None:
    protocol, rows, names = grouped
    full = json.loads(json.dumps(aggregate_groups(rows, names, protocol)))  # as stored in the result JSON
    picked = [i for i, name in enumerate(names) if name in subset]
    direct = aggregate_groups([rows[i] for i in picked], [names[i] for i in picked], protocol)
    for aggregation in ("image_mean", "group_mean"):
        again = reaggregate({g: full["groups"][g] for g in subset}, aggregation, protocol.name)
        for key in SCALAR_KEYS:
            expected = direct[aggregation]["metrics"][key]
            assert again["metrics"][key] == (None if expected is None else pytest.approx(expected, abs=1e-12))
        for key in CURVE_KEYS:
            np.testing.assert_allclose(
                again["curves"][key], direct[aggregation]["curves"][key], rtol=0, atol=1e-12
            )


def test_bad_arguments(grouped) -> None:
    protocol, rows, names = grouped
    with pytest.raises(CosalbenchError, match="aggregation"):
        reaggregate(aggregate_groups(rows, names, protocol)["groups"], "median", protocol.name)
    with pytest.raises(CosalbenchError, match="no images"):
        aggregate([], protocol)
    with pytest.raises(CosalbenchError, match="group names"):
        aggregate_groups(rows, names[:-1], protocol)
    with pytest.raises(CosalbenchError, match="unknown protocol"):
        reaggregate({}, "image_mean", "nope")
