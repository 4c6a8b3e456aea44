"""Turn a downloaded CoSOD set into the canonical layout, with a manifest and a validation report.

Output, for every image/mask pair found in the download (keyed by (group, stem)):

- ``images/<NAME>/<group>/<stem>.jpg``: the source bytes (hard link, symlink or copy) when the
  source is a JPEG that decodes to RGB; otherwise (PNG/BMP/TIFF/WebP, greyscale, CMYK, palette or
  RGBA input) the image converted with Pillow to 3-channel RGB and encoded as JPEG, quality 95
  (EXIF kept, ICC profile dropped).
- ``gts/<NAME>/<group>/<stem>.png``: 8-bit L, strictly 0/255: the mask decoded like
  ``cv2.imread(path, IMREAD_GRAYSCALE)`` (colour masks -> luma, palette and 1-bit PNGs expanded),
  then ``255 where value > 128 else 0``, the rule the evaluators apply.
- ``manifests/<NAME>.csv`` and ``manifests/<NAME>.report.json``, written last.

Reruns: a pair whose source files (path, size, mtime) match the manifest and whose outputs exist is
not touched; every other output is computed and written only if its bytes differ from what is on
disk. Without ``overwrite`` a data root holding another standardisation of NAME, or a source that
changed since the manifest was written, is refused; with it, only changed outputs are replaced and
outputs whose source disappeared are removed.
"""

from __future__ import annotations

import csv
import hashlib
import io as bytes_io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cosalbench import io, layout, staging
from cosalbench.datasets import registry, source_layouts, validate
from cosalbench.datasets.locking import dataset_lock
from cosalbench.datasets.source_layouts import SourceListing, SourceTrees
from cosalbench.errors import CosalbenchError, exception_summary
from cosalbench.layout import entry_problem

MANIFEST_COLUMNS = (
    "group",
    "stem",
    "image_source",
    "mask_source",
    "width",
    "height",
    "mask_fg_fraction",
    "image_sha256",
    "mask_sha256",
    "flags",
    "categories",
    "image_source_stamp",
    "mask_source_stamp",
)
FLAG_SEPARATOR = validate.FLAG_SEPARATOR
JPEG_QUALITY = 95
MASK_THRESHOLD = 128  # foreground is value > 128, as in PySODMetrics and the CoSal Matlab tool
EXIF_ORIENTATION = 0x0112
PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class PreparedImage:
    """The bytes to store for one image and what was done to them."""

    data: bytes
    linked: bool  # True: ``data`` is the source file itself
    width: int
    height: int
    converted_from: str | None  # "<format>/<mode>" of a converted source, e.g. "JPEG/CMYK"
    exif_orientation: int


@dataclass(frozen=True)
class PreparedMask:
    """The 0/255 PNG to store for one mask and how it differed from the source."""

    data: bytes
    width: int
    height: int
    pixels_changed: int  # pixels whose grey value was neither 0 nor 255
    foreground: int  # pixels > 128
    source_max: int


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def source_stamp(path: Path) -> str:
    """Cheap fingerprint of a source file: ``<size>:<mtime in ns>``."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def prepare_image(path: Path) -> PreparedImage:
    """Decode an image fully and decide: keep the source JPEG bytes, or convert to an RGB JPEG.

    Kept when Pillow reads it as JPEG (or MPO, a multi-frame JPEG) in mode RGB; converted otherwise.
    Raises CosalbenchError when the file cannot be decoded completely.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CosalbenchError(path, f"cannot read file ({exc.strerror})") from exc
    try:
        with Image.open(bytes_io.BytesIO(data)) as image:
            image.load()
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
            width, height = image.size
            if image.format in ("JPEG", "MPO") and image.mode == "RGB":
                return PreparedImage(data, True, width, height, None, orientation)
            source_kind = f"{image.format}/{image.mode}"
            extra = {"exif": image.info["exif"]} if image.info.get("exif") else {}
            buffer = bytes_io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY, **extra)
    except PIL_ERRORS as exc:
        raise CosalbenchError(path, f"unreadable image ({exception_summary(exc)})") from exc
    return PreparedImage(buffer.getvalue(), False, width, height, source_kind, orientation)


def binarize(grey: np.ndarray) -> np.ndarray:
    """255 where ``grey > 128``, else 0 (uint8)."""
    return np.where(grey > MASK_THRESHOLD, 255, 0).astype(np.uint8)


def prepare_mask(path: Path) -> PreparedMask:
    """Decode a mask as OpenCV's IMREAD_GRAYSCALE does and binarise it at > 128."""
    grey = io.read_gray(path)
    binary = binarize(grey)
    height, width = binary.shape
    return PreparedMask(
        data=io.encode_image(binary, ".png"),
        width=width,
        height=height,
        pixels_changed=int(np.count_nonzero(grey != binary)),
        foreground=int(np.count_nonzero(binary)),
        source_max=int(grey.max()),
    )


def row_flags(image: PreparedImage, mask: PreparedMask) -> list[str]:
    """The manifest flags of one pair (``duplicate_stem`` is added once every pair is known)."""
    flags = []
    if image.converted_from:
        flags.append(f"converted={image.converted_from}")
    if image.exif_orientation != 1:
        flags.append(f"exif_orientation={image.exif_orientation}")
    if mask.pixels_changed:
        flags.append(f"binarized={mask.pixels_changed}")
    if mask.foreground == 0:
        flags.append("empty")
        if mask.source_max > 0:
            flags.append("faint")
    if (mask.width, mask.height) != (image.width, image.height):
        flags.append(f"size_mismatch={mask.width}x{mask.height}")
    return flags


@dataclass
class Previous:
    """What an earlier standardize run of the dataset left in the data root."""

    rows: dict[tuple[str, str], dict[str, str]] | None  # None: no usable manifest + report pair
    source_root: Path | None
    source_dirs: tuple[str, str] | None
    link: str | None


def load_previous(data_root: Path, dataset: str) -> Previous:
    """Read the manifest and report of an earlier run (both are needed to trust the manifest)."""
    manifest = layout.manifest_path(data_root, dataset)
    report = validate.read_report(data_root, dataset)
    source = (report or {}).get("source") or {}
    if not manifest.is_file() or not {"root", "images", "masks"} <= source.keys():
        return Previous(None, None, None, None)
    rows = validate.read_manifest_rows(data_root, dataset)
    if rows and not {"image_source_stamp", "mask_source_stamp", "image_sha256"} <= rows[0].keys():
        return Previous(None, None, None, None)
    return Previous(
        rows={(row["group"], row["stem"]): row for row in rows},
        source_root=Path(source["root"]),
        source_dirs=(source["images"], source["masks"]),
        link=(report or {}).get("link"),
    )


def _output_paths(data_root: Path, dataset: str, key: tuple[str, str]) -> tuple[Path, Path]:
    group, stem = key
    return (
        layout.images_dir(data_root, dataset) / group / f"{stem}.jpg",
        layout.gts_dir(data_root, dataset) / group / f"{stem}.png",
    )


def _same_source(
    row: dict[str, str], previous: Previous, trees: SourceTrees, pair: tuple[Path, Path]
) -> bool:
    """True when the manifest row was made from exactly these (unchanged) source files."""
    assert previous.source_root is not None
    for column, path in (("image", pair[0]), ("mask", pair[1])):
        recorded = os.path.normpath(previous.source_root / row[f"{column}_source"])
        if recorded != os.path.normpath(path) or row[f"{column}_source_stamp"] != source_stamp(path):
            return False
    return True


def check_previous(
    previous: Previous,
    trees: SourceTrees,
    listing: SourceListing,
    data_root: Path,
    dataset: str,
    overwrite: bool,
) -> None:
    """Refuse (without ``overwrite``) to touch another standardisation of the dataset or a changed source."""
    if overwrite:
        return
    hint = "pass --overwrite to update it, or choose another --data-root"
    if previous.rows is None:
        expected = {p for key in listing.pairs for p in _output_paths(data_root, dataset, key)}
        foreign = [
            p
            for p in validate.dataset_files(data_root, dataset)
            if p not in expected and not io.is_temp_path(p)
        ]
        if foreign:
            raise CosalbenchError(
                foreign[0],
                f"{len(foreign)} file(s) under the data root's {dataset} folders are not from this source "
                "and there is no manifest",
                hint,
            )
        return
    current = (str(trees.images), str(trees.masks))
    if previous.source_dirs != current:
        raise CosalbenchError(
            layout.report_path(data_root, dataset),
            f"holds a standardization of {dataset} from {previous.source_dirs[0]} (not {trees.images})",
            hint,
        )
    changed = [
        key
        for key, row in previous.rows.items()
        if key in listing.pairs and not _same_source(row, previous, trees, listing.pairs[key])
    ]
    gone = [key for key in previous.rows if key not in listing.pairs]
    if changed or gone:
        example = "/".join((changed or gone)[0])
        raise CosalbenchError(
            trees.root,
            f"the source changed since {dataset} was standardized ({len(changed)} pair(s) changed, "
            f"{len(gone)} gone, e.g. {example})",
            "pass --overwrite to update the standardized copy",
        )


def _reusable(
    row: dict[str, str] | None,
    previous: Previous,
    trees: SourceTrees,
    pair: tuple[Path, Path],
    outputs: tuple[Path, Path],
    verify: bool,
) -> bool:
    if row is None or not _same_source(row, previous, trees, pair) or not all(p.exists() for p in outputs):
        return False
    if verify:
        return (
            validate.sha256_file(outputs[0]) == row["image_sha256"]
            and validate.sha256_file(outputs[1]) == row["mask_sha256"]
        )
    return True


def _matches(dst: Path, data: bytes, src: Path | None, link: str) -> bool:
    """True when ``dst`` already holds ``data`` as ``link`` would place it (a symlink must point at ``src``)."""
    if src is not None and link == "symlink":
        return dst.is_symlink() and os.readlink(dst) == str(src.resolve())
    if dst.is_symlink() or not dst.is_file():
        return False
    if src is not None and os.path.samefile(src, dst):
        return True
    return dst.stat().st_size == len(data) and dst.read_bytes() == data


def _place(dst: Path, data: bytes, src: Path | None, link: str, may_replace: bool) -> bool:
    """Put ``data`` at ``dst`` (linking ``src`` when given) unless it is already there; True if written."""
    if _matches(dst, data, src, link):
        return False
    if (dst.exists() or dst.is_symlink()) and not may_replace:
        raise CosalbenchError(
            dst,
            "exists with different content and was not made from this source",
            "pass --overwrite to replace it, or choose another --data-root",
        )
    if src is not None:
        io.link_or_copy(src, dst, link)
    else:
        io.write_bytes(dst, data)
    return True


def _remove_stale(data_root: Path, dataset: str, expected: set[Path], overwrite: bool) -> int:
    """Delete leftover temp files, and with ``overwrite`` every other unexpected output; count them."""
    removed = 0
    for path in validate.dataset_files(data_root, dataset):
        if path not in expected and (overwrite or io.is_temp_path(path)):
            path.unlink()
            removed += 1
    for top in (layout.images_dir(data_root, dataset), layout.gts_dir(data_root, dataset)):
        validate.prune_empty_dirs(top)
    return removed


def _mark_duplicate_stems(rows: list[dict[str, str]]) -> None:
    """Add (or drop) the ``duplicate_stem`` flag: the stem occurs in more than one group."""
    groups_of: dict[str, set[str]] = {}
    for row in rows:
        groups_of.setdefault(row["stem"], set()).add(row["group"])
    for row in rows:
        flags = [f for f in row["flags"].split(FLAG_SEPARATOR) if f and f != "duplicate_stem"]
        if len(groups_of[row["stem"]]) > 1:
            flags.append("duplicate_stem")
        row["flags"] = FLAG_SEPARATOR.join(flags)


def _write_if_changed(path: Path, text: str) -> None:
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        io.write_text(path, text)


def _manifest_text(rows: list[dict[str, str]]) -> str:
    buffer = bytes_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows([row[c] for c in MANIFEST_COLUMNS] for row in rows)
    return buffer.getvalue()


@dataclass
class RunStats:
    """What one standardize run did to the data root."""

    images_written: int = 0
    masks_written: int = 0
    unchanged: int = 0
    removed: int = 0


def standardize_dataset(
    name: str,
    src: str | Path,
    data_root: str | Path | None = None,
    images: str | None = None,
    masks: str | None = None,
    link: str = "hardlink",
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[dict, RunStats]:
    """Standardise the download ``src`` of dataset ``name`` under ``data_root``.

    Returns the validation report (also saved as ``manifests/<NAME>.report.json``) and what was
    written. ``images``/``masks`` name the two trees explicitly (relative to ``src``) instead of probing.
    """
    if link not in io.LINK_MODES:
        raise CosalbenchError(None, f"unknown link mode {link!r}", f"use one of {', '.join(io.LINK_MODES)}")
    if (images is None) != (masks is None):
        raise CosalbenchError(None, "--images and --masks go together", "give both sub-folders or neither")
    dataset = registry.dataset_folder_name(name)
    info = registry.lookup(dataset)
    root = layout.resolve_data_root(data_root)
    trees = (
        source_layouts.custom(Path(src), images, masks)
        if images is not None and masks is not None
        else source_layouts.probe(Path(src), dataset, info)
    )
    if trees.images == layout.images_dir(root, dataset).resolve():
        raise CosalbenchError(
            trees.images, "is the standardized copy itself", "point --src at the original download"
        )
    staging.check_output_folder(root, "--data-root")
    with dataset_lock(root, dataset, "standardize"):
        return _standardize(dataset, info, root, trees, link, overwrite, progress)


def _standardize(
    dataset: str,
    info: registry.DatasetInfo | None,
    root: Path,
    trees: SourceTrees,
    link: str,
    overwrite: bool,
    progress: bool,
) -> tuple[dict, RunStats]:
    """The body of :func:`standardize_dataset`, run while holding the dataset's lock."""
    listing = source_layouts.scan(trees)
    previous = load_previous(root, dataset)
    check_previous(previous, trees, listing, root, dataset, overwrite)

    stats = RunStats()
    rows: list[dict[str, str]] = []
    unreadable: list[tuple[Path, str]] = []
    for key, pair in tqdm(
        listing.pairs.items(), desc=f"standardize {dataset}", unit="pair", disable=not progress
    ):
        outputs = _output_paths(root, dataset, key)
        old_row = None if previous.rows is None else previous.rows.get(key)
        if previous.link == link and _reusable(old_row, previous, trees, pair, outputs, verify=overwrite):
            assert old_row is not None
            rows.append(dict(old_row))
            stats.unchanged += 1
            continue
        problems = [(path, problem) for path in pair if (problem := entry_problem(path)) is not None]
        if problems:
            unreadable.extend(problems)
            continue
        try:
            image = prepare_image(pair[0])
            mask = prepare_mask(pair[1])
        except CosalbenchError as exc:
            unreadable.append((Path(exc.path or pair[0]), exc.problem))
            continue
        may_replace = overwrite or old_row is not None
        image_written = _place(outputs[0], image.data, pair[0] if image.linked else None, link, may_replace)
        mask_written = _place(outputs[1], mask.data, None, link, may_replace)
        stats.images_written += image_written
        stats.masks_written += mask_written
        stats.unchanged += not (image_written or mask_written)
        rows.append(_make_row(key, pair, trees, image, mask))

    expected = {p for row in rows for p in _output_paths(root, dataset, (row["group"], row["stem"]))}
    stats.removed = _remove_stale(root, dataset, expected, overwrite)
    _mark_duplicate_stems(rows)
    report = validate.build_report(dataset, info, listing, rows, unreadable, link)
    manifest = layout.manifest_path(root, dataset)
    if rows:
        _write_if_changed(manifest, _manifest_text(rows))
    elif overwrite and manifest.is_file():
        manifest.unlink()
    _write_if_changed(layout.report_path(root, dataset), validate.report_text(report))
    return report, stats


def _make_row(
    key: tuple[str, str],
    pair: tuple[Path, Path],
    trees: SourceTrees,
    image: PreparedImage,
    mask: PreparedMask,
) -> dict[str, str]:
    group, stem = key
    return {
        "group": group,
        "stem": stem,
        "image_source": trees.relative(pair[0]),
        "mask_source": trees.relative(pair[1]),
        "width": str(image.width),
        "height": str(image.height),
        "mask_fg_fraction": f"{mask.foreground / (mask.width * mask.height):.6f}",
        "image_sha256": sha256_bytes(image.data),
        "mask_sha256": sha256_bytes(mask.data),
        "flags": FLAG_SEPARATOR.join(row_flags(image, mask)),
        "categories": group,
        "image_source_stamp": source_stamp(pair[0]),
        "mask_source_stamp": source_stamp(pair[1]),
    }
