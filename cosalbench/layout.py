"""The canonical data layout: where images, masks, manifests and predictions live.

```
<data-root>/images/<Dataset>/<group>/<stem>.jpg
<data-root>/gts/<Dataset>/<group>/<stem>.png        8-bit L, strictly 0/255
<data-root>/manifests/<Dataset>.csv                 one row per (group, stem)
<preds>/<method>/<Dataset>/<group>/<stem>.png       predictions, 8-bit L
```
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cosalbench.errors import CosalbenchError

DATA_ROOT_ENV = "COSALBENCH_DATA"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SYSTEM_FILE_NAMES = frozenset({"Thumbs.db", ".DS_Store", "desktop.ini"})
SYSTEM_DIR_NAMES = frozenset({"__MACOSX"})
# Separator of the manifest's ``categories`` column (group names may contain spaces, never ';').
CATEGORY_SEPARATOR = ";"


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """``--data-root`` if given, else ``$COSALBENCH_DATA``, else ``./data``."""
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def images_dir(data_root: Path, dataset: str) -> Path:
    """Folder of a dataset's images: ``<data-root>/images/<dataset>``."""
    return Path(data_root) / "images" / dataset


def gts_dir(data_root: Path, dataset: str) -> Path:
    """Folder of a dataset's ground-truth masks: ``<data-root>/gts/<dataset>``."""
    return Path(data_root) / "gts" / dataset


def manifest_path(data_root: Path, dataset: str) -> Path:
    """The dataset's manifest CSV: ``<data-root>/manifests/<dataset>.csv``."""
    return Path(data_root) / "manifests" / f"{dataset}.csv"


def report_path(data_root: Path, dataset: str) -> Path:
    """The dataset's validation/build report: ``<data-root>/manifests/<dataset>.report.json``."""
    return Path(data_root) / "manifests" / f"{dataset}.report.json"


def prediction_dir(pred_root: Path, method: str, dataset: str) -> Path:
    """Folder of one method's maps for one dataset: ``<preds>/<method>/<dataset>``."""
    return Path(pred_root) / method / dataset


def is_system_file(path: Path) -> bool:
    """True for OS clutter (``Thumbs.db``, ``.DS_Store``, AppleDouble ``._x``, ``__MACOSX``)."""
    return (
        path.name in SYSTEM_FILE_NAMES
        or path.name.startswith("._")
        or any(part in SYSTEM_DIR_NAMES for part in path.parts)
    )


def is_image_file(path: Path) -> bool:
    """True for a regular, non-system file with a known image extension (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not is_system_file(path) and path.is_file()


def list_groups(folder: Path) -> list[str]:
    """Sorted names of the group sub-folders of ``folder`` (system folders skipped)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_dir() and p.name not in SYSTEM_DIR_NAMES)


def _candidates(group_dir: Path, extensions: Iterable[str]) -> dict[str, list[Path]]:
    """Stem -> every non-system entry of ``group_dir`` named ``<stem>.<ext>`` (files or not), sorted."""
    wanted = {e.lower() for e in extensions}
    group_dir = Path(group_dir)
    if any(part in SYSTEM_DIR_NAMES for part in group_dir.parts):
        return {}
    found: dict[str, list[Path]] = {}
    # is_system_file of each entry, its folder's part checked once above
    for path in sorted(group_dir.iterdir(), key=lambda entry: entry.name):
        name = path.name
        if name in SYSTEM_FILE_NAMES or name in SYSTEM_DIR_NAMES or name.startswith("._"):
            continue
        if path.suffix.lower() in wanted:
            found.setdefault(path.stem, []).append(path)
    return dict(sorted(found.items()))


def list_images(group_dir: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> dict[str, Path]:
    """Map stem -> path for the image files of one group folder, sorted by stem.

    Extensions match case-insensitively. When two files share a stem (``a.jpg`` and ``a.png``)
    the first in ``extensions`` order wins; :func:`scan_images` reports such stems instead.
    """
    order = [e.lower() for e in extensions]
    found: dict[str, Path] = {}
    for stem, paths in _candidates(group_dir, extensions).items():
        files = [path for path in paths if path.is_file()]
        if files:
            found[stem] = min(files, key=lambda path: order.index(path.suffix.lower()))
    return found


def entry_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (a broken link, a folder, an empty file...), or None when it
    is a non-empty regular file. Every command that lists images or masks asks this of each entry, so a
    dataset never shrinks without a word."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (-> {os.readlink(path)})"
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    return "is empty (0 bytes)" if info.st_size == 0 else None


@dataclass(frozen=True)
class GroupListing:
    """What one group folder holds, by stem: exactly one usable file, several candidates, or a bad entry."""

    files: dict[str, Path]
    duplicates: dict[str, list[Path]]  # two or more entries for one stem (``0003.jpg`` and ``0003.png``)
    unreadable: dict[str, tuple[Path, str]]  # the one entry for a stem, and why it cannot be read


def scan_images(group_dir: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> GroupListing:
    """Sort every entry named like an image in ``group_dir`` into usable, ambiguous and unreadable.

    Unlike :func:`list_images` nothing is chosen or skipped silently: broken symbolic links, folders
    named ``x.png`` and empty files are *unreadable*, and a stem with two entries (any extensions)
    is a *duplicate*, whatever they are.
    """
    files: dict[str, Path] = {}
    duplicates: dict[str, list[Path]] = {}
    unreadable: dict[str, tuple[Path, str]] = {}
    for stem, paths in _candidates(group_dir, extensions).items():
        if len(paths) > 1:
            duplicates[stem] = paths
        elif (problem := entry_problem(paths[0])) is not None:
            unreadable[stem] = (paths[0], problem)
        else:
            files[stem] = paths[0]
    return GroupListing(files, duplicates, unreadable)


def plain_name(name: str, what: str = "name") -> str:
    """``name`` without trailing slashes, refused unless it is a plain, visible folder name.

    Method and dataset names become file and folder names under ``--out``: ``Demo/`` would write
    hidden files ``.json``, ``../x`` would write outside the output folder.
    """
    cleaned = name.rstrip("/" + os.sep)
    if (
        not cleaned
        or cleaned.startswith(".")
        or any(c in cleaned for c in "/\\")
        or any(ord(c) < 32 for c in cleaned)
    ):
        raise CosalbenchError(
            None,
            f"{what} {name!r} is not a plain folder name",
            "no '/', '\\', leading '.' or control characters",
        )
    return cleaned


def read_manifest(data_root: Path, dataset: str) -> list[dict[str, str]]:
    """Rows of ``<data-root>/manifests/<dataset>.csv`` as dicts (empty list when there is none)."""
    path = manifest_path(data_root, dataset)
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except UnicodeDecodeError as exc:
        raise CosalbenchError(
            path,
            f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
            "re-save it as UTF-8",
        ) from exc
    except csv.Error as exc:
        raise CosalbenchError(path, f"is not a readable CSV ({exc})", "re-run standardize") from exc
