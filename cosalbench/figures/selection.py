"""Choosing the groups and images a qualitative figure shows, from the methods' per-image scores.

* ``disagree``: where the methods' scores differ most (population std across methods);
* ``hardest`` / ``easiest``: lowest / highest mean score across methods (direction-aware: for MAE
  the hardest images have the largest error);
* ``random``: a seeded random draw.

Only images every method scored with a finite value count. A group's rank is the mean of its
images' statistic; ties are broken by name, so a selection is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cosalbench.errors import CosalbenchError
from cosalbench.figures.sources import Key, finite
from cosalbench.metrics.report import LOWER_IS_BETTER

PICKS = ("disagree", "hardest", "easiest", "random")
Selection = list[tuple[str, list[str]]]  # [(group, [stem, ...]), ...] in display order


def _statistics(
    scores: Mapping[str, Mapping[Key, Mapping[str, float | None]]], metric: str, pick: str
) -> dict[Key, float]:
    """Per shared image: the value ranked in descending order (larger = shown first)."""
    methods = list(scores)
    shared = set.intersection(*(set(rows) for rows in scores.values()))
    stats = {}
    for key in shared:
        values = [scores[m][key].get(metric) for m in methods]
        if not all(finite(v) for v in values):
            continue
        array = np.array(values, dtype=np.float64)
        if pick == "disagree":
            stats[key] = float(np.std(array))
        else:
            goodness = -array.mean() if metric in LOWER_IS_BETTER else array.mean()
            stats[key] = -goodness if pick == "hardest" else goodness
    return stats


def _ranked(items: Mapping[str, float]) -> list[str]:
    return sorted(items, key=lambda name: (-items[name], name))


def choose(
    scores: Mapping[str, Mapping[Key, Mapping[str, float | None]]],
    metric: str = "sm",
    pick: str = "disagree",
    groups: Sequence[str] | None = None,
    n_groups: int = 4,
    per_group: int = 4,
    seed: int = 0,
) -> Selection:
    """Pick ``n_groups`` groups (or the named ``groups``, in that order) and ``per_group`` images each.

    ``scores`` maps each method to its per-image scores ``{(group, stem): {metric: value}}``.
    """
    if pick not in PICKS:
        raise CosalbenchError(None, f"unknown pick {pick!r}", f"use one of {', '.join(PICKS)}")
    if pick == "disagree" and len(scores) < 2:
        raise CosalbenchError(None, "--pick disagree needs the results of at least two methods")
    stats = _statistics(scores, metric, pick)
    if not stats:
        raise CosalbenchError(
            None, f"no image has a finite {metric} for every method", "choose another --metric"
        )
    by_group: dict[str, dict[str, float]] = {}
    for (group, stem), value in stats.items():
        by_group.setdefault(group, {})[stem] = value
    rng = np.random.default_rng(seed)
    if groups:
        unknown = [g for g in groups if g not in by_group]
        if unknown:
            known = ", ".join(sorted(by_group))
            raise CosalbenchError(
                None, f"unknown group(s) {', '.join(unknown)}", f"groups scored by all: {known}"
            )
        chosen = list(dict.fromkeys(groups))
    elif pick == "random":
        names = sorted(by_group)
        chosen = [names[i] for i in rng.choice(len(names), size=min(n_groups, len(names)), replace=False)]
    else:
        chosen = _ranked({g: float(np.mean(list(v.values()))) for g, v in by_group.items()})[:n_groups]
    selection = []
    for group in chosen:
        stems = _ranked(by_group[group])
        if pick == "random":
            stems = sorted(stems)
            stems = [
                stems[i]
                for i in sorted(rng.choice(len(stems), size=min(per_group, len(stems)), replace=False))
            ]
        selection.append((group, stems[:per_group]))
    return selection
