"""Which result documents share one table cell: a single run, or the seeds of one training setup.

A result document may carry a ``provenance`` object (model, recipe hash, training sets, backbone
weights, input size, seed, steps, checkpoint rule, checkpoint). Documents of one method, dataset and
protocol are kept together when every one names a different ``provenance.seed`` and they agree on the
training setup (``SAME_SETUP_KEYS``) and on the number of images scored; a table then shows the mean
and sample standard deviation (ddof=1) over the seeds. Anything else is two results for one cell and
refused: true duplicates, the same seed twice, or a seeded and an unseeded document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.results_io import source

# provenance keys that must agree between the seeds averaged in one cell (steps and checkpoint may
# differ: a checkpoint rule can pick a different step per seed)
SAME_SETUP_KEYS = (
    "model",
    "recipe_sha256",
    "train_sets",
    "backbone_weights",
    "input_size",
    "checkpoint_rule",
)
UNKNOWN_TRAIN_SET = "unknown training set"
GROUPINGS = ("train_set",)

CellKey = tuple[str, str, str, str]  # (block, method, dataset, protocol); block "" without --group-by


def provenance(doc: dict) -> dict:
    """The document's provenance object; empty when it has none."""
    return doc.get("provenance") or {}


def seed_of(doc: dict) -> int | None:
    """``provenance.seed``, None when not recorded."""
    return provenance(doc).get("seed")


def train_set_of(doc: dict) -> str:
    """The training sets joined with " + ", or ``UNKNOWN_TRAIN_SET`` when the document does not say."""
    names = provenance(doc).get("train_sets")
    return " + ".join(names) if names else UNKNOWN_TRAIN_SET


def seeds_text(runs: Sequence[dict]) -> str:
    """``"0, 1, 2"``: the seeds of a cell's documents."""
    return ", ".join(str(seed_of(doc)) for doc in runs)


def run_labels(docs: Sequence[dict]) -> list[str]:
    """One label per document: the method, plus protocol, training set and seed where documents of
    the same method differ in them (``GCoNet (seed 0)``)."""
    labels = []
    for doc in docs:
        same = [d for d in docs if d["method"] == doc["method"]]
        parts = [
            text(doc)
            for text in (lambda d: d["protocol"], train_set_of, lambda d: f"seed {seed_of(d)}")
            if len({text(d) for d in same}) > 1
        ]
        labels.append(f"{doc['method']} ({', '.join(parts)})" if parts else doc["method"])
    return labels


def _refuse_second(first: dict, doc: dict, where: str, group_by: str | None) -> None:
    """Raise unless ``doc`` is another seed of ``first``'s training setup (``where`` names the cell)."""
    if provenance(first) and provenance(doc):
        for key in SAME_SETUP_KEYS:
            mine, theirs = provenance(doc).get(key), provenance(first).get(key)
            if mine != theirs:
                hint = "seeds are averaged only within one training setup"
                if key == "train_sets" and group_by is None:
                    hint += "; --group-by train_set shows each training set as its own block"
                raise CosalbenchError(
                    doc.get("_path"),
                    f"second result for method {where} has provenance.{key} {mine!r}, the first {theirs!r}; "
                    f"first: {source(first)}",
                    hint,
                )
    a, b = seed_of(first), seed_of(doc)
    if a is None or b is None or a == b:
        if a is None and b is None:
            detail = ""
        else:
            detail = f" with seed {a}" if a == b else ", one with a seed and one without"
        raise CosalbenchError(
            doc.get("_path"),
            f"second result for method {where}{detail}; first: {source(first)}",
            "pass only one result per method and dataset, or results that each name a different provenance.seed",
        )
    if doc["n_images"] != first["n_images"]:
        raise CosalbenchError(
            doc.get("_path"),
            f"seed {b} of method {where} scored {doc['n_images']} images, seed {a} scored "
            f"{first['n_images']}; first: {source(first)}",
            "evaluate every seed's maps on the same images",
        )


def index_runs(docs: Sequence[dict], group_by: str | None = None) -> dict[CellKey, list[dict]]:
    """(block, method, dataset, protocol) -> its documents sorted by seed, in order of first appearance.

    ``group_by="train_set"`` makes the training set part of the key (one block per training set);
    otherwise the block is "". Raises CosalbenchError for two documents that are not distinct seeds of
    one setup, naming both files.
    """
    if group_by is not None and group_by not in GROUPINGS:
        raise CosalbenchError(None, f"unknown grouping {group_by!r}", f"use {', '.join(GROUPINGS)}")
    index: dict[CellKey, list[dict]] = {}
    for doc in docs:
        block = train_set_of(doc) if group_by else ""
        key = (block, doc["method"], doc["dataset"], doc["protocol"])
        where = f"{doc['method']!r} on {doc['dataset']} ({doc['protocol']})"
        if block:
            where += f" trained on {block}"
        for other in index.get(key, []):
            _refuse_second(other, doc, where, group_by)
        index.setdefault(key, []).append(doc)
    return {key: sorted(runs, key=lambda d: seed_of(d) or 0) for key, runs in index.items()}


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; None for one value) and count of one cell's values."""

    mean: float | None
    std: float | None
    n: int


def summarize(values: Sequence[float | None]) -> Summary:
    """Summary of the defined values (None: metric undefined in that run); NaN in any run gives NaN."""
    defined = [v for v in values if v is not None]
    n = len(defined)
    if n == 0:
        return Summary(None, None, 0)
    if any(math.isnan(v) for v in defined):
        return Summary(math.nan, math.nan if n > 1 else None, n)
    mean = math.fsum(defined) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in defined) / (n - 1)) if n > 1 else None
    return Summary(mean, std, n)
