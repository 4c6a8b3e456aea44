"""Image/mask reading and writing with atomic renames, plus linking helpers.

Every writer here writes ``<name>.tmp<suffix>`` next to the target and renames it into place,
so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cosalbench.errors import CosalbenchError

LINK_MODES = ("hardlink", "symlink", "copy")


def temp_path(path: Path) -> Path:
    """The temporary sibling a writer uses before renaming: ``a/b.png`` -> ``a/b.<pid>.tmp.png``.

    The process id keeps two processes writing the same target (two runs into one root, two ranks)
    from sharing a temporary file; the name still ends its stem with ``.tmp``, so
    :func:`is_temp_path` recognises leftovers of interrupted runs.
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")


def is_temp_path(path: Path) -> bool:
    """Whether ``path`` is a writer's temporary (``*.tmp.<ext>``), never a finished output."""
    return Path(path).stem.endswith(".tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` only if the block succeeds.

    An OS error about the temporary file (or about no file: ``savefig``, ``torch.save``) is raised
    again naming ``path``, the file the user asked for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename not in (None, str(tmp), tmp) or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # OSError(errno) keeps the subclass
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (NaN written as ``NaN``, as Python's json does) atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a CSV with a header row atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def encode_image(array: np.ndarray, suffix: str, jpeg_quality: int = 95) -> bytes:
    """Encode an array as PNG/JPEG bytes (suffix decides the format)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(suffix, array, params)
    if not ok:
        raise CosalbenchError(None, f"could not encode an image as {suffix}")
    return buffer.tobytes()


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 grey (H, W) or BGR (H, W, 3) array as PNG, atomically."""
    write_bytes(path, encode_image(array, ".png"))


def write_jpeg(path: str | Path, array: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 BGR or grey array as JPEG at ``quality``, atomically."""
    write_bytes(path, encode_image(array, ".jpg", quality))


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's log (``[ WARN:0] ... PNG input buffer is incomplete``) inside the block."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def read_image(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode an image file with OpenCV; a missing, empty or corrupt file raises CosalbenchError."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise CosalbenchError(path, f"cannot read file ({exc.strerror})") from exc
    if data.size == 0:
        raise CosalbenchError(path, "file is empty")
    with quiet_opencv():  # a corrupt file is reported in one line below, not by OpenCV's warnings
        image = cv2.imdecode(data, flags)
    if image is None:
        raise CosalbenchError(path, "not a readable image (corrupt or unsupported format)")
    return image


def _orientation_flag(ignore_orientation: bool) -> int:
    return cv2.IMREAD_IGNORE_ORIENTATION if ignore_orientation else 0


def read_gray(path: str | Path, ignore_orientation: bool = False) -> np.ndarray:
    """Decode as 8-bit single channel, like ``cv2.imread(path, IMREAD_GRAYSCALE)``.

    OpenCV turns the pixels by an EXIF orientation tag (JPEG, and PNG ``eXIf``); ``ignore_orientation``
    returns them as stored instead, as PIL's ``Image.open`` and Matlab's ``imread`` do.
    """
    return read_image(path, cv2.IMREAD_GRAYSCALE | _orientation_flag(ignore_orientation))


def read_bgr(path: str | Path, ignore_orientation: bool = False) -> np.ndarray:
    """Decode as 8-bit 3-channel BGR, like ``cv2.imread(path, IMREAD_COLOR)``.

    ``ignore_orientation``: the pixels as stored, never turned by an EXIF orientation tag (the rule for
    model and baseline inputs, whose official code reads with PIL or Matlab, neither of which applies it).
    """
    return read_image(path, cv2.IMREAD_COLOR | _orientation_flag(ignore_orientation))


def link_or_copy(src: str | Path, dst: str | Path, mode: str = "hardlink") -> None:
    """Place ``src`` at ``dst`` as a hard link, symlink or copy, atomically.

    A hard link that cannot be made (another file system) falls back to a copy.
    """
    if mode not in LINK_MODES:
        raise CosalbenchError(None, f"unknown link mode {mode!r}", f"use one of {', '.join(LINK_MODES)}")
    src, dst = Path(src), Path(dst)
    with atomic_path(dst) as tmp:
        if mode == "symlink":
            os.symlink(src.resolve(), tmp)
            return
        if mode == "hardlink":
            try:
                os.link(src, tmp)
                return
            except OSError:
                pass
        shutil.copyfile(src, tmp)
