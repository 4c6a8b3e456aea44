"""Find a dataset's image and mask trees inside a download, and list and pair their files.

A download holds ``<dataset folder>/<image subdir>/<group>/<file>`` and the same for masks. The
dataset folder is ``--src`` itself or one of its sub-folders (``--src`` may point at the folder that
contains ``CoCA/``), and the sub-folder pair is one of the known layouts (matched case-insensitively)
or the canonical ``images/<name>`` + ``gts/<name>`` of another data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cosalbench import layout
from cosalbench.datasets import registry
from cosalbench.datasets.registry import KNOWN_LAYOUTS, DatasetInfo
from cosalbench.errors import CosalbenchError
from cosalbench.layout import entry_problem


@dataclass(frozen=True)
class SourceTrees:
    """Where a dataset's images and masks were found."""

    root: Path  # the resolved --src
    images: Path
    masks: Path
    layout: str  # "image/binary", ..., or "custom"

    def relative(self, path: Path) -> str:
        """``path`` relative to ``root`` with forward slashes (``..`` when outside it)."""
        return Path(os.path.relpath(path, self.root)).as_posix()


@dataclass
class TreeListing:
    """The files of one tree (images or masks), sorted."""

    # (group, stem) -> file; entries named like images that cannot be read (a broken link, a folder
    # called ``0004.png``) are listed too, so that standardize reports them as unreadable
    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    conflicts: list[tuple[Path, Path]] = field(default_factory=list)  # (kept, ignored), same stem
    system: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)  # not an image, or a folder nested inside a group
    ungrouped: list[Path] = field(default_factory=list)  # files directly under the tree root
    empty_groups: list[Path] = field(default_factory=list)  # group folders without any image entry


@dataclass
class SourceListing:
    """Images and masks paired by (group, stem), plus everything that did not pair."""

    trees: SourceTrees
    pairs: dict[tuple[str, str], tuple[Path, Path]]
    images_without_masks: list[Path]
    masks_without_images: list[Path]
    images: TreeListing
    masks: TreeListing


def is_skipped(path: Path) -> bool:
    """OS clutter (``layout.is_system_file``) or any hidden entry (``.ipynb_checkpoints``, ``.git``)."""
    return layout.is_system_file(path) or path.name.startswith(".")


def _child_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_skipped(p))


def _find_child(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name``, compared case-insensitively (exact match first)."""
    exact = folder / name
    if exact.is_dir():
        return exact
    matches = [p for p in _child_dirs(folder) if p.name.casefold() == name.casefold()]
    return matches[0] if len(matches) == 1 else None


def _layouts_in(folder: Path, spellings: tuple[str, ...]) -> list[tuple[Path, Path, str]]:
    """Every known (image, mask) folder pair present in ``folder``."""
    found = []
    for image_sub, mask_sub in KNOWN_LAYOUTS:
        image_dir, mask_dir = _find_child(folder, image_sub), _find_child(folder, mask_sub)
        if image_dir is not None and mask_dir is not None:
            found.append((image_dir, mask_dir, f"{image_sub}/{mask_sub}"))
    for spelling in spellings:
        images_root, gts_root = _find_child(folder, "images"), _find_child(folder, "gts")
        if images_root is None or gts_root is None:
            break
        image_dir, mask_dir = _find_child(images_root, spelling), _find_child(gts_root, spelling)
        if image_dir is not None and mask_dir is not None:
            found.append((image_dir, mask_dir, f"images/{image_dir.name}+gts/{mask_dir.name}"))
            break
    return found


def probe(src: Path, name: str, info: DatasetInfo | None) -> SourceTrees:
    """Locate the image and mask trees of dataset ``name`` in the download ``src``.

    Tries ``src`` first, then its sub-folders named like the dataset (any alias, any case), then its
    only sub-folder when it has just one and that is not named like another known dataset (an
    archive extracted under another name). Other datasets' folders are never taken. Raises CosalbenchError when nothing or more than one layout
    matches.
    """
    src = Path(src)
    if not src.is_dir():
        problem = "is not a folder" if os.path.lexists(src) else "source folder does not exist"
        raise CosalbenchError(src, problem, "pass the extracted download with --src")
    root = src.resolve()
    spellings = info.spellings() if info is not None else (name,)
    wanted = {s.casefold() for s in spellings}
    children = _child_dirs(root)
    named = [c for c in children if c.name.casefold() in wanted]
    sole = children if len(children) == 1 and registry.lookup(children[0].name) is None else []
    candidates = [root, *named, *sole]
    for candidate in candidates:
        found = _layouts_in(candidate, spellings)
        if len(found) == 1:
            image_dir, mask_dir, label = found[0]
            return SourceTrees(root, image_dir, mask_dir, label)
        if len(found) > 1:
            options = ", ".join(label for _, _, label in found)
            raise CosalbenchError(
                candidate,
                f"several image/mask folder pairs found ({options})",
                "choose one with --images SUBDIR --masks SUBDIR",
            )
    known = ", ".join(f"{i}/{m}" for i, m in KNOWN_LAYOUTS)
    raise CosalbenchError(
        src,
        f"no image/mask folders of {name} found here or one level below (looked for {known})",
        "point --src at the extracted dataset, or pass --images SUBDIR --masks SUBDIR",
    )


def custom(src: Path, images: str, masks: str) -> SourceTrees:
    """Trees given explicitly with ``--images``/``--masks`` (relative to ``src`` or absolute)."""
    if not Path(src).is_dir():
        raise CosalbenchError(src, "source folder does not exist or is not a folder", "pass it with --src")
    root = Path(src).resolve()
    trees = []
    for option, sub in (("--images", images), ("--masks", masks)):
        folder = (root / sub).resolve()
        if not folder.is_dir():
            raise CosalbenchError(folder, f"{option} folder does not exist", "give it relative to --src")
        trees.append(folder)
    return SourceTrees(root, trees[0], trees[1], "custom")


def _preference(path: Path) -> tuple[bool, int, str]:
    """Sort key choosing which of two same-stem files to keep: a readable one, then
    ``layout.IMAGE_EXTENSIONS`` order."""
    return entry_problem(path) is not None, layout.IMAGE_EXTENSIONS.index(path.suffix.lower()), path.name


def list_tree(folder: Path) -> TreeListing:
    """List the image files of ``<folder>/<group>/`` keyed by (group, stem); extensions in any case."""
    listing = TreeListing()
    for entry in sorted(folder.iterdir()):
        if is_skipped(entry):
            listing.system.append(entry)
        elif not entry.is_dir():
            listing.ungrouped.append(entry)
        else:
            _list_group(entry, listing)
    return listing


def _list_group(group_dir: Path, listing: TreeListing) -> None:
    by_stem: dict[str, list[Path]] = {}
    for entry in sorted(group_dir.iterdir()):
        if is_skipped(entry):
            listing.system.append(entry)
        elif entry.suffix.lower() not in layout.IMAGE_EXTENSIONS:
            listing.other.append(entry)
        else:
            by_stem.setdefault(entry.stem, []).append(entry)
    if not by_stem:
        listing.empty_groups.append(group_dir)
    for stem, paths in by_stem.items():
        kept, *ignored = sorted(paths, key=_preference)
        listing.files[(group_dir.name, stem)] = kept
        listing.conflicts.extend((kept, other) for other in ignored)


def scan(trees: SourceTrees) -> SourceListing:
    """List both trees and pair their files by (group, stem)."""
    images, masks = list_tree(trees.images), list_tree(trees.masks)
    pairs = {
        key: (images.files[key], masks.files[key]) for key in sorted(images.files.keys() & masks.files.keys())
    }
    return SourceListing(
        trees=trees,
        pairs=pairs,
        images_without_masks=[path for key, path in sorted(images.files.items()) if key not in masks.files],
        masks_without_images=[path for key, path in sorted(masks.files.items()) if key not in images.files],
        images=images,
        masks=masks,
    )
