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
from collections.abc import Iterable
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


def list_images(group_dir: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> dict[str, Path]:
    """Map stem -> path for the image files of one group folder, sorted by stem.

    Extensions match case-insensitively. When two files share a stem (``a.jpg`` and ``a.png``)
    the first in ``extensions`` order wins.
    """
    wanted = [e.lower() for e in extensions]
    found: dict[str, Path] = {}
    for path in sorted(Path(group_dir).iterdir()):
        suffix = path.suffix.lower()
        if suffix not in wanted or is_system_file(path) or not path.is_file():
            continue
        current = found.get(path.stem)
        if current is None or wanted.index(suffix) < wanted.index(current.suffix.lower()):
            found[path.stem] = path
    return dict(sorted(found.items()))


def read_manifest(data_root: Path, dataset: str) -> list[dict[str, str]]:
    """Rows of ``<data-root>/manifests/<dataset>.csv`` as dicts (empty list when there is none)."""
    path = manifest_path(data_root, dataset)
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except UnicodeDecodeError as exc:
        raise CosalbenchError(path, "not a UTF-8 text file", "save the manifest as UTF-8 CSV") from exc
