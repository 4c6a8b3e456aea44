"""RCGS training groups: sub-groups of n images drawn from one group, and their co-category labels.

A sub-group's co-category label vector marks every category of the vocabulary that *all* of its
images contain (the manifest's ``categories`` column, ``;``-separated). The vocabulary is the sorted
set of categories of the training manifest; it is stored in the recipe and checkpoint so prediction
needs no manifest. An image whose manifest row lists no category counts as showing its group's name
(a group is defined by its common category), so sets without the column still train.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np


class _HasCategories(Protocol):
    group: str
    categories: tuple[str, ...]


def item_categories(item: _HasCategories) -> frozenset[str]:
    """The categories shown by one image: its manifest categories, else its group name."""
    return frozenset(item.categories) if item.categories else frozenset((item.group,))


def category_vocabulary(items: Iterable[_HasCategories]) -> list[str]:
    """Sorted union of the categories of ``items`` (the fixed label order of a model)."""
    vocabulary: set[str] = set()
    for item in items:
        vocabulary |= item_categories(item)
    return sorted(vocabulary)


def co_category_labels(category_sets: Sequence[Iterable[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """Float32 vector over ``vocabulary``: 1 for each category every set contains, else 0.

    Categories outside the vocabulary are ignored; an empty sequence of sets is an error.
    """
    if not category_sets:
        raise ValueError("a sub-group needs at least one image")
    shared = set(category_sets[0]).intersection(*category_sets[1:])
    return np.array([1.0 if name in shared else 0.0 for name in vocabulary], dtype=np.float32)


def epoch_subgroups(
    group_sizes: Mapping[str, int], size: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """One epoch of sub-groups: (group, ``size`` image indices), every image used at least once.

    Each group's images are shuffled and cut into sub-groups of ``size``; the last one is completed
    with other images of the same group drawn at random (with repetition only when the group holds
    fewer than ``size`` images). Groups are visited in sorted order and the sub-groups of all groups
    are shuffled together, so the result depends only on ``rng``.
    """
    if size < 1:
        raise ValueError(f"sub-group size must be >= 1, got {size}")
    subgroups: list[tuple[str, np.ndarray]] = []
    for group in sorted(group_sizes):
        count = group_sizes[group]
        if count == 0:
            continue
        order = rng.permutation(count)
        for start in range(0, count, size):
            chunk = order[start : start + size]
            missing = size - len(chunk)
            if missing:
                others = np.setdiff1d(np.arange(count), chunk)
                pool = others if len(others) >= missing else np.arange(count)
                chunk = np.concatenate([chunk, rng.choice(pool, missing, replace=len(pool) < missing)])
            subgroups.append((group, chunk))
    return [subgroups[i] for i in rng.permutation(len(subgroups))]


def batched(subgroups: Sequence[tuple[str, np.ndarray]], per_batch: int) -> Iterator[list]:
    """Consecutive batches of ``per_batch`` sub-groups (the last one may be smaller)."""
    if per_batch < 1:
        raise ValueError(f"sub-groups per batch must be >= 1, got {per_batch}")
    for start in range(0, len(subgroups), per_batch):
        yield list(subgroups[start : start + per_batch])
