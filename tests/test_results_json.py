"""Result documents: the fast writers of number lists, scalars and CSV columns give exactly the text of
the standard encoder and of ``repr``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosalbench.metrics.results import _csv_cell, _csv_column, _number_list, document_json


def _lists(seed: int) -> list[list]:
    rng = np.random.default_rng(seed)
    lists = [rng.random(256).tolist(), (rng.random(256) * 1e-3).tolist()]
    lists.append((10.0 ** rng.uniform(-320, 308, 256) * rng.choice([-1, 1], 256)).tolist())
    lists.append([0.0, -0.0, 1.0, 0.5, 1e-5, 1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 1e15,
                  5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 10.00001, 100.00001234])  # fmt: skip
    mixed = rng.random(64).tolist()
    mixed[3], mixed[10], mixed[20] = None, 3.2e-05, None
    lists.append(mixed)
    return lists


@pytest.mark.parametrize("seed", range(3))
def test_number_lists_are_written_as_json_writes_them(seed: int) -> None:
    for values in _lists(seed):
        assert _number_list(values) == json.dumps(values)


def test_number_list_leaves_other_lists_and_refuses_non_finite_values() -> None:
    assert _number_list(["a", 1.0]) is None
    assert _number_list([1, 2.0]) is None  # an int is not written as a float
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            _number_list([0.5, bad])


def test_documents_parse_back_to_what_was_written() -> None:
    rng = np.random.default_rng(0)
    document = {
        "curves": {"fpr": (rng.random(256) * 1e-4).tolist(), "n": 3},
        "names": ["a", "b"],
        "empty": [],
    }
    assert json.loads(document_json(document)) == document


def test_documents_are_written_as_json_writes_their_scalars_and_keys() -> None:
    document = {
        'ünïcode "key"\n': "välue\t\u2028",
        "int": -3,
        "big": 10**30,
        "true": True,
        "none": None,
        "small": 1e-07,
        "huge": 1e16,
        "float64": np.float64(0.1),
        "nested": {"empty": {}, "list": ["a", 1, None], "numbers": [1e-05, 0.5]},
    }
    text = document_json(document)
    for key, value in document.items():
        if not isinstance(value, dict):
            assert f"{json.dumps(key)}: {json.dumps(value, default=float)}" in text
    assert json.loads(text) == json.loads(json.dumps(document, default=float))
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            document_json({"x": bad})


@pytest.mark.parametrize("seed", range(3))
def test_csv_columns_are_each_cell_as_repr_writes_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for values in _lists(seed):
        column = np.array([np.nan if value is None else value for value in values], dtype=np.float64)
        column[rng.random(column.size) < 0.1] = np.nan
        if seed == 2:
            column[::7] = np.inf
        defined = rng.random(column.size) < 0.9
        expected = [_csv_cell(float(v)) if known else "" for v, known in zip(column, defined, strict=True)]
        assert _csv_column(column, defined) == expected
    assert _csv_column(np.array([np.nan, 1e-05, -np.inf]), np.ones(3, bool)) == ["NaN", "1e-05", "-inf"]
