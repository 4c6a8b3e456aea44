"""The ground truth ``evaluate`` scores against, checked against what the dataset should hold.

A dataset's masks are compared with its manifest (``manifests/<Dataset>.csv``: exactly its
(group, stem) set) when there is one, else with the registry's expected group and image counts,
else with nothing. Entries that cannot be read (a broken symbolic link, a folder named
``0004.png``, an empty or truncated PNG) are never skipped silently: they make the set incomplete.
Two files for one (group, stem) (``0003.jpg`` beside ``0003.png``) are always an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosalbench import io, layout
from cosalbench.datasets import registry
from cosalbench.errors import CosalbenchError
from cosalbench.metrics import results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with
SHOWN = 3  # problem entries named in an error line
ALLOW_HINT = "or pass --allow-incomplete-gt to score the masks that are there"


@dataclass
class GroundTruth:
    """The readable masks of one dataset (``items``) and how they differ from what is expected."""

    dataset: str
    folder: Path
    items: list[tuple[str, str, Path]]  # (group, stem, path), sorted by group then stem
    reference: str  # "manifest", "registry" or "none"
    expected: int  # masks the reference expects (the entries found when there is none)
    missing: list[str] = field(default_factory=list)  # expected "group/stem" without any entry
    unexpected: list[str] = field(default_factory=list)  # readable "group/stem" the manifest lacks
    unreadable: list[str] = field(default_factory=list)  # "group/name (why)"
    count_problem: str | None = None  # registry counts that differ (no names to give)

    @property
    def complete(self) -> bool:
        """True when the masks found are exactly the expected ones, all readable."""
        return not (self.missing or self.unexpected or self.unreadable or self.count_problem)

    def document_fields(self) -> dict[str, Any]:
        """``gt_complete`` and ``gt_check`` as they appear in every result document."""
        return {
            "gt_complete": self.complete,
            "gt_check": {
                "reference": self.reference,
                "expected": self.expected,
                "found": len(self.items),
                "missing": self.missing,
                "unreadable": self.unreadable,
                "unexpected": self.unexpected,
            },
        }

    def problem(self) -> str:
        """One line saying how the set differs: counts, then the first few entries."""
        parts = [self.count_problem] if self.count_problem else []
        parts += results.ground_truth_problems(self.document_fields()["gt_check"], SHOWN)
        usable = f"{len(self.items)} of {self.expected} expected masks usable"
        return f"ground truth incomplete ({usable}): " + "; ".join(parts)


def png_problem(path: Path) -> str | None:
    """Why a ``.png`` mask is not a complete PNG (a cheap look at its first and last bytes).

    A file failing the look is decoded before it is called corrupt, so a readable image with a
    misleading name or bytes after its end is accepted.
    """
    with open(path, "rb") as handle:
        head = handle.read(len(PNG_SIGNATURE))
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - len(PNG_TRAILER)))
        tail = handle.read()
    if head == PNG_SIGNATURE and tail == PNG_TRAILER:
        return None
    try:
        io.read_gray(path)
    except CosalbenchError as exc:
        return exc.problem
    return None


def _scan(folder: Path) -> tuple[list[tuple[str, str, Path]], dict[tuple[str, str], str]]:
    """Readable masks and unreadable entries (key -> "group/name (why)") of ``folder/<group>/``.

    Two files for one key raise.
    """
    items: list[tuple[str, str, Path]] = []
    unreadable: dict[tuple[str, str], str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and not entry.exists():
            unreadable[(entry.name, "")] = f"{entry.name}/ (broken symbolic link)"
    for group in layout.list_groups(folder):
        listing = layout.scan_images(folder / group)
        for stem, paths in listing.duplicates.items():
            names = " and ".join(path.name for path in paths)
            raise CosalbenchError(
                paths[0],
                f"two ground-truth files for one image ({group}/{stem}): {names}",
                "keep one mask per (group, stem)",
            )
        for stem, (path, why) in listing.unreadable.items():
            unreadable[(group, stem)] = f"{group}/{path.name} ({why})"
        for stem, path in listing.files.items():
            why = png_problem(path) if path.suffix.lower() == ".png" else None
            if why is None:
                items.append((group, stem, path))
            else:
                unreadable[(group, stem)] = f"{group}/{path.name} ({why})"
    return items, unreadable


def _manifest_keys(data_root: Path, dataset: str) -> list[tuple[str, str]] | None:
    """The manifest's (group, stem) keys, or None when the dataset has no manifest."""
    path = layout.manifest_path(data_root, dataset)
    if not os.path.lexists(path):
        return None
    if not path.is_file():
        raise CosalbenchError(path, layout.entry_problem(path) or "is not a file", "restore or remove it")
    rows = layout.read_manifest(data_root, dataset)
    if rows and not {"group", "stem"} <= rows[0].keys():
        raise CosalbenchError(path, "lacks the columns group and stem", "re-run standardize")
    return list(dict.fromkeys((row["group"], row["stem"]) for row in rows))


def _registry_problem(dataset: str, items: list[tuple[str, str, Path]]) -> tuple[int, str | None] | None:
    """``(expected images, problem)`` against the registry's counts; None when it has none."""
    info = registry.lookup(dataset)
    if info is None or info.expected_images is None:
        return None
    groups = len({group for group, _, _ in items})
    counts_differ = len(items) != info.expected_images
    groups_differ = info.expected_groups is not None and groups != info.expected_groups
    if not (counts_differ or groups_differ):
        return info.expected_images, None
    expected_groups = f" in {info.expected_groups} groups" if info.expected_groups is not None else ""
    note = f"; {info.count_notes}" if info.count_notes else ""
    return info.expected_images, (
        f"{len(items)} masks in {groups} groups, the registry expects {info.expected_images}"
        f"{expected_groups} (no manifest to compare with{note})"
    )


def load_ground_truth(data_root: Path, dataset: str) -> GroundTruth:
    """Every mask of ``dataset`` under ``data_root``, compared with its manifest or registry counts."""
    folder = layout.gts_dir(data_root, dataset)
    if not folder.is_dir():
        raise CosalbenchError(
            folder, "ground-truth folder not found", "check --data-root and the dataset name"
        )
    items, unreadable = _scan(folder)
    keys = _manifest_keys(data_root, dataset)
    if keys is not None:
        found = {(group, stem) for group, stem, _ in items}
        listed = set(keys)
        present = found | unreadable.keys()
        return GroundTruth(
            dataset,
            folder,
            items,
            "manifest",
            len(keys),
            missing=[f"{g}/{s}" for g, s in keys if (g, s) not in present],
            unexpected=[f"{g}/{s}" for g, s, _ in items if (g, s) not in listed],
            unreadable=list(unreadable.values()),
        )
    checked = _registry_problem(dataset, items)
    if checked is not None:
        expected, problem = checked
        return GroundTruth(
            dataset,
            folder,
            items,
            "registry",
            expected,
            unreadable=list(unreadable.values()),
            count_problem=problem,
        )
    return GroundTruth(
        dataset, folder, items, "none", len(items) + len(unreadable), unreadable=list(unreadable.values())
    )


def checked_ground_truth(data_root: Path, dataset: str, allow_incomplete: bool = False) -> GroundTruth:
    """:func:`load_ground_truth`, refused unless complete (or ``allow_incomplete``) and non-empty."""
    gt = load_ground_truth(data_root, dataset)
    if not gt.complete and not allow_incomplete:
        reference = (
            f"compare with {layout.manifest_path(data_root, dataset)}"
            if gt.reference == "manifest"
            else "restore the files"
        )
        raise CosalbenchError(gt.folder, gt.problem(), f"{reference}, {ALLOW_HINT}")
    if not gt.items:
        raise CosalbenchError(gt.folder, "ground-truth folder holds no readable masks in group sub-folders")
    return gt
