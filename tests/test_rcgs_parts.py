"""RCGS building blocks: the LRBP layer against its explicit bilinear form, sub-groups and co-category labels."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference_models.lrbp import LowRankBilinearPooling, signed_sqrt  # noqa: E402
from reference_models.subgroups import (  # noqa: E402
    batched,
    category_vocabulary,
    co_category_labels,
    epoch_subgroups,
    item_categories,
)


def test_lrbp_equals_trace_of_low_rank_form_times_bilinear_feature() -> None:
    torch.manual_seed(0)
    layer = LowRankBilinearPooling(in_features=6, out_features=3, rank=4).double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(2, 5, 6, dtype=torch.float64)  # 2 sets of 5 items in R^6
    got = layer(x)
    for b in range(2):
        bilinear = x[b].T @ x[b] / 5  # D x D, mean over items
        for k in range(3):
            u_pos, u_neg = layer.weight[k, :2].T, layer.weight[k, 2:].T  # D x r/2
            w = u_pos @ u_pos.T - u_neg @ u_neg.T
            assert torch.linalg.matrix_rank(w) <= 4
            expected = torch.trace(w @ bilinear) + layer.bias[k]
            assert got[b, k].item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)


def test_lrbp_is_a_symmetric_mean_over_items() -> None:
    torch.manual_seed(1)
    layer = LowRankBilinearPooling(8, 5, 2)
    x = torch.randn(3, 7, 8)
    base = layer(x)
    torch.testing.assert_close(layer(x[:, torch.randperm(7)]), base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer(torch.cat([x, x, x], dim=1)), base, rtol=1e-5, atol=1e-6)


def test_lrbp_rejects_odd_rank() -> None:
    with pytest.raises(ValueError, match="even"):
        LowRankBilinearPooling(4, 2, 3)


def test_signed_sqrt_values_and_finite_gradient_at_zero() -> None:
    x = torch.tensor([-4.0, 0.0, 9.0], requires_grad=True)
    y = signed_sqrt(x)
    torch.testing.assert_close(y.detach(), torch.tensor([-2.0, 0.0, 3.0]), atol=2e-3, rtol=0)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def _item(group: str, *categories: str) -> SimpleNamespace:
    return SimpleNamespace(group=group, categories=tuple(categories))


def test_item_without_manifest_categories_shows_its_group() -> None:
    assert item_categories(_item("red disc")) == {"red disc"}
    assert item_categories(_item("red disc", "red disc", "blue ring")) == {"red disc", "blue ring"}


def test_vocabulary_is_sorted_union_and_labels_mark_categories_shared_by_all() -> None:
    items = [
        _item("dog", "dog", "person"),
        _item("dog", "dog", "person", "frisbee"),
        _item("dog", "dog"),
        _item("cat", "cat", "person"),
        _item("zebra"),
    ]
    vocabulary = category_vocabulary(items)
    assert vocabulary == ["cat", "dog", "frisbee", "person", "zebra"]
    sets = [item_categories(item) for item in items]
    np.testing.assert_array_equal(co_category_labels(sets[:2], vocabulary), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(co_category_labels(sets[:3], vocabulary), [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(co_category_labels([sets[1]], vocabulary), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(co_category_labels([sets[0], sets[3]], vocabulary), [0, 0, 0, 1, 0])
    assert co_category_labels([{"unknown"}], vocabulary).dtype == np.float32
    with pytest.raises(ValueError):
        co_category_labels([], vocabulary)


def test_epoch_subgroups_cover_every_image_within_one_group() -> None:
    sizes = {"a": 12, "b": 5, "c": 3, "empty": 0}
    subgroups = epoch_subgroups(sizes, 5, np.random.default_rng(0))
    assert Counter(group for group, _ in subgroups) == {"a": 3, "b": 1, "c": 1}
    for group in ("a", "b", "c"):
        chunks = [indices for g, indices in subgroups if g == group]
        assert all(len(chunk) == 5 for chunk in chunks)
        used = np.concatenate(chunks)
        assert set(used.tolist()) == set(range(sizes[group]))
        # only the last chunk of a group is topped up, with distinct images when the group has enough
        if sizes[group] >= 5:
            assert all(len(set(chunk.tolist())) == 5 for chunk in chunks)
    again = epoch_subgroups(sizes, 5, np.random.default_rng(0))
    assert [(g, i.tolist()) for g, i in again] == [(g, i.tolist()) for g, i in subgroups]


def test_batched_keeps_a_smaller_last_batch() -> None:
    assert [len(b) for b in batched(list(range(7)), 3)] == [3, 3, 1]
    with pytest.raises(ValueError):
        list(batched([1], 0))
