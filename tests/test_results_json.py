"""Result documents: the fast writer of number lists gives exactly the standard encoder's text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosalbench.metrics.results import _number_list, document_json


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
