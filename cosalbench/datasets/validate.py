"""Validation of standardised datasets: the standardize report, the manifest re-check, the status table.

Statuses and exit codes: ``complete`` (0) — every pair standardised, nothing suspicious;
``usable with warnings`` (3) — pairs were written but something needs a look (counts differ from
the registry, unpaired or unreadable files, size mismatches, empty masks, changed files...);
``unusable`` (2) — nothing usable.
"""

from __future__ import annotations

import csv
import hashlib
import io as bytes_io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cosalbench import __version__, layout
from cosalbench.datasets import registry
from cosalbench.datasets.registry import DatasetInfo
from cosalbench.datasets.source_layouts import SourceListing
from cosalbench.errors import CosalbenchError

COMPLETE, WARNINGS, UNUSABLE, MISSING = "complete", "usable with warnings", "unusable", "missing"
EXIT_CODES = {COMPLETE: 0, WARNINGS: 3, UNUSABLE: 2}
FLAG_SEPARATOR = ";"  # between the tokens of the manifest's ``flags`` column
SHOWN_PER_LIST = 5  # items printed per problem list (the report JSON keeps them all)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents (symlinks followed)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_report(data_root: Path, dataset: str) -> dict[str, Any] | None:
    """The saved ``manifests/<dataset>.report.json``, or None when absent or not a JSON object."""
    path = layout.report_path(data_root, dataset)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def report_text(report: dict[str, Any]) -> str:
    """The report as saved: indented JSON, one trailing newline."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _item(row: dict[str, str]) -> str:
    return f"{row['group']}/{row['stem']}"


def parse_flags(text: str) -> dict[str, str]:
    """A manifest ``flags`` cell as a dict: ``"binarized=3;empty"`` -> ``{"binarized": "3", "empty": ""}``."""
    parsed = {}
    for token in filter(None, text.split(FLAG_SEPARATOR)):
        name, _, value = token.partition("=")
        parsed[name] = value
    return parsed


def _flag(row: dict[str, str], name: str) -> str | None:
    return parse_flags(row["flags"]).get(name)


def number(value: int | None) -> str:
    """``1295`` -> ``"1,295"``; None -> ``"?"``."""
    return "?" if value is None else f"{value:,}"


def _count_warning(info: DatasetInfo | None, groups: int, images: int) -> str | None:
    if info is None:
        return None
    wrong_groups = info.expected_groups is not None and groups != info.expected_groups
    wrong_images = info.expected_images is not None and images != info.expected_images
    if not (wrong_groups or wrong_images):
        return None
    expected = f"{number(info.expected_images)} images in {number(info.expected_groups)} groups"
    note = f"; {info.count_notes}" if info.count_notes else ""
    return f"found {images:,} images in {groups} groups, the registry expects {expected}{note}"


def build_report(
    dataset: str,
    info: DatasetInfo | None,
    listing: SourceListing,
    rows: list[dict[str, str]],
    unreadable: list[tuple[Path, str]],
    link: str,
) -> dict[str, Any]:
    """The standardize report of one run, from the source listing and the manifest rows."""
    trees = listing.trees
    rel = trees.relative

    def paths(items: Iterable[Path]) -> list[str]:
        return [rel(p) for p in items]

    flagged = {name: [r for r in rows if _flag(r, name) is not None] for name in ("converted", "binarized")}
    stems: dict[str, list[str]] = {}
    for row in rows:
        stems.setdefault(row["stem"], []).append(row["group"])
    report: dict[str, Any] = {
        "cosalbench": __version__,
        "dataset": dataset,
        "registry": None
        if info is None
        else {
            "name": info.name,
            "expected_groups": info.expected_groups,
            "expected_images": info.expected_images,
            "notes": info.notes,
        },
        "source": {
            "root": str(trees.root),
            "images": str(trees.images),
            "masks": str(trees.masks),
            "layout": trees.layout,
        },
        "link": link,
        "counts": {
            "groups": len({r["group"] for r in rows}),
            "images": len(rows),
            "source_pairs": len(listing.pairs),
            "expected_groups": None if info is None else info.expected_groups,
            "expected_images": None if info is None else info.expected_images,
            "source_images": len(listing.images.files),
            "source_masks": len(listing.masks.files),
            "converted_images": len(flagged["converted"]),
            "binarized_masks": len(flagged["binarized"]),
        },
        "images_without_masks": paths(listing.images_without_masks),
        "masks_without_images": paths(listing.masks_without_images),
        "unreadable": [{"path": rel(path), "problem": problem} for path, problem in unreadable],
        "size_mismatches": [
            {"item": _item(r), "image": f"{r['width']}x{r['height']}", "mask": _flag(r, "size_mismatch")}
            for r in rows
            if _flag(r, "size_mismatch") is not None
        ],
        "empty_masks": [_item(r) for r in rows if _flag(r, "empty") is not None],
        "faint_masks": [_item(r) for r in rows if _flag(r, "faint") is not None],
        "conflicting_files": [
            {"kept": rel(kept), "ignored": rel(ignored)}
            for kept, ignored in [*listing.images.conflicts, *listing.masks.conflicts]
        ],
        "ungrouped_files": paths([*listing.images.ungrouped, *listing.masks.ungrouped]),
        "empty_groups": paths([*listing.images.empty_groups, *listing.masks.empty_groups]),
        "non_binary_masks": [
            {"item": _item(r), "pixels_changed": int(_flag(r, "binarized") or 0)}
            for r in flagged["binarized"]
        ],
        "converted_images": [{"item": _item(r), "from": _flag(r, "converted")} for r in flagged["converted"]],
        "exif_rotated_images": [_item(r) for r in rows if _flag(r, "exif_orientation") is not None],
        "system_files_skipped": paths([*listing.images.system, *listing.masks.system]),
        "other_files_skipped": paths([*listing.images.other, *listing.masks.other]),
        "duplicate_stems": {stem: groups for stem, groups in sorted(stems.items()) if len(groups) > 1},
    }
    warnings = _warnings(report, info)
    status = UNUSABLE if not rows else WARNINGS if warnings else COMPLETE
    report.update(warnings=warnings, status=status, exit_code=EXIT_CODES[status])
    return report


# report list -> how a warning about it reads; lists not named here are informational
WARNING_LISTS = {
    "images_without_masks": "image(s) without a mask",
    "masks_without_images": "mask(s) without an image",
    "unreadable": "unreadable file(s), skipped",
    "size_mismatches": "image/mask size mismatch(es), kept as they are",
    "empty_masks": "empty mask(s) (no pixel > 128)",
    "faint_masks": "mask(s) whose foreground is all <= 128 (0/1 label maps?), stored empty",
    "conflicting_files": "file(s) sharing a stem with another file of the same group, ignored",
    "ungrouped_files": "file(s) outside any group folder, skipped",
    "empty_groups": "group folder(s) without any image or mask, ignored",
}


def _warnings(report: dict[str, Any], info: DatasetInfo | None) -> list[str]:
    counts = report["counts"]
    found = _count_warning(info, counts["groups"], counts["images"])
    warnings = [found] if found else []
    warnings += [f"{len(report[key])} {text}" for key, text in WARNING_LISTS.items() if report[key]]
    return warnings


def _describe(entry: Any) -> str:
    if isinstance(entry, dict):
        return " ".join(f"{k}={v}" for k, v in entry.items())
    return str(entry)


def _preview(entries: list[Any]) -> str:
    shown = ", ".join(_describe(e) for e in entries[:SHOWN_PER_LIST])
    more = len(entries) - SHOWN_PER_LIST
    return shown + (f", ... ({more} more)" if more > 0 else "")


def format_report(report: dict[str, Any]) -> list[str]:
    """A few human lines summarising a standardize report."""
    counts, source = report["counts"], report["source"]
    expected = ""
    if counts["expected_images"] is not None or counts["expected_groups"] is not None:
        expected = (
            f" (registry: {number(counts['expected_images'])} in {number(counts['expected_groups'])} groups)"
        )
    lines = [
        f"{report['dataset']}: {counts['images']} of {counts.get('source_pairs', '?')} pairs standardized "
        f"in {counts['groups']} groups{expected}"
        + (f"; {len(report['unreadable'])} unreadable file(s) skipped" if report["unreadable"] else ""),
        f"  source: {source['images']} + {source['masks']} [{source['layout']}]",
        f"  {counts['converted_images']} image(s) converted to RGB JPEG, "
        f"{counts['binarized_masks']} mask(s) binarized at >128, "
        f"{len(report['duplicate_stems'])} stem(s) shared by several groups, "
        f"{len(report['system_files_skipped'])} system file(s) and {len(report['other_files_skipped'])} "
        "other file(s) skipped",
    ]
    for text in report["warnings"]:
        lines.append(f"  warning: {text}")
    for key in WARNING_LISTS:
        if report[key]:
            lines.append(f"    {key}: {_preview(report[key])}")
    lines.append(f"status: {report['status']} (exit {report['exit_code']})")
    return lines


def read_manifest_rows(data_root: Path, dataset: str) -> list[dict[str, str]]:
    """The manifest's rows (empty when there is none); undecodable text or unsafe names raise naming the file.

    ``group`` and ``stem`` become path components, so a row naming ``..`` or holding a slash is
    refused rather than followed outside the data root.
    """
    path = layout.manifest_path(data_root, dataset)
    if not path.is_file():
        return []
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CosalbenchError(
            path, f"not UTF-8 text (byte {exc.start:,} of {len(data):,})", "re-run standardize"
        ) from None
    try:
        rows = list(csv.DictReader(bytes_io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CosalbenchError(path, f"not a readable CSV ({exc})", "re-run standardize") from None
    for line_number, row in enumerate(rows, start=2):
        for column in ("group", "stem"):
            value = row.get(column)
            if value is not None and (value in ("", ".", "..") or "/" in value or "\\" in value):
                raise CosalbenchError(
                    path, f"line {line_number}: {column} {value!r} is not a plain name", "re-run standardize"
                )
    return rows


def dataset_files(data_root: Path, dataset: str) -> list[Path]:
    """Every file (symlinks included) under ``images/<dataset>`` and ``gts/<dataset>``, sorted."""
    files = []
    for top in (layout.images_dir(data_root, dataset), layout.gts_dir(data_root, dataset)):
        if top.is_dir():
            files.extend(p for p in top.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(files)


def prune_empty_dirs(top: Path) -> None:
    """Remove the empty folders under ``top`` (deepest first); ``top`` itself is kept."""
    if top.is_dir():
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()


def validate_dataset(data_root: str | Path | None, name: str, progress: bool = True) -> dict[str, Any]:
    """Re-check a standardised set against its manifest: missing, changed (sha256) and extra files.

    The status also carries the warnings of the saved standardize report: ``complete`` needs both.
    """
    root = layout.resolve_data_root(data_root)
    dataset = registry.dataset_folder_name(name)
    manifest = layout.manifest_path(root, dataset)
    if not manifest.is_file():
        raise CosalbenchError(
            manifest, "no manifest", f"run `cosalbench standardize {dataset} --src DIR` first"
        )
    rows = read_manifest_rows(root, dataset)
    needed = {"group", "stem", "image_sha256", "mask_sha256"}
    if rows and not needed <= rows[0].keys():
        raise CosalbenchError(
            manifest,
            f"lacks the column(s) {', '.join(sorted(needed - rows[0].keys()))}",
            "re-run standardize",
        )
    missing, changed, expected = [], [], set()
    for row in tqdm(rows, desc=f"validate {dataset}", unit="pair", disable=not progress):
        group, stem = row["group"], row["stem"]
        for path, digest in (
            (layout.images_dir(root, dataset) / group / f"{stem}.jpg", row["image_sha256"]),
            (layout.gts_dir(root, dataset) / group / f"{stem}.png", row["mask_sha256"]),
        ):
            expected.add(path)
            relative = path.relative_to(root).as_posix()
            if not path.is_file():
                missing.append(relative)
            elif sha256_file(path) != digest:
                changed.append(relative)
    extra = [p.relative_to(root).as_posix() for p in dataset_files(root, dataset) if p not in expected]
    saved = read_report(root, dataset)
    saved_status = None if saved is None else saved.get("status")
    intact = len(rows) * 2 - len(missing)
    if intact == 0:
        status = UNUSABLE
    elif missing or changed or extra or saved_status != COMPLETE:
        status = WARNINGS
    else:
        status = COMPLETE
    return {
        "dataset": dataset,
        "pairs": len(rows),
        "missing": missing,
        "changed": changed,
        "extra": extra,
        "standardize_status": saved_status,
        "status": status,
        "exit_code": EXIT_CODES[status],
    }


def format_validation(result: dict[str, Any]) -> list[str]:
    """A few human lines summarising ``validate_dataset``'s result."""
    lines = [
        f"{result['dataset']}: {result['pairs']} pairs in the manifest; {len(result['missing'])} file(s) missing, "
        f"{len(result['changed'])} changed, {len(result['extra'])} extra",
    ]
    for key in ("missing", "changed", "extra"):
        if result[key]:
            lines.append(f"  {key}: {_preview(result[key])}")
    lines.append(f"  standardize report: {result['standardize_status'] or 'none'}")
    lines.append(f"status: {result['status']} (exit {result['exit_code']})")
    return lines


def _count_tree(folder: Path) -> tuple[int, int]:
    groups = layout.list_groups(folder)
    return len(groups), sum(len(layout.list_images(folder / g, (".png",))) for g in groups)


def dataset_status(data_root: Path, name: str) -> dict[str, Any]:
    """Presence and status of one dataset under ``data_root`` for the ``datasets`` table.

    From the saved report when there is one (a standardize report carries ``status`` and ``counts``;
    a ``build-coco-seg`` report carries ``n_groups``/``n_pairs`` and ``dry_run``), else the manifest,
    else a count of the mask folders.
    """
    report = read_report(data_root, name)
    if report is not None and isinstance(report.get("counts"), dict) and "status" in report:
        counts = report["counts"]
        return {"status": report["status"], "groups": counts.get("groups"), "images": counts.get("images")}
    if report is not None and "n_pairs" in report:
        status = "listed only (dry run)" if report.get("dry_run") else "built"
        return {"status": status, "groups": report.get("n_groups"), "images": report.get("n_pairs")}
    if layout.manifest_path(data_root, name).is_file():
        try:
            rows = read_manifest_rows(data_root, name)
        except CosalbenchError as exc:
            return {"status": f"unreadable manifest ({exc.problem})", "groups": None, "images": None}
        return {
            "status": "present (no report)",
            "groups": len({r["group"] for r in rows}),
            "images": len(rows),
        }
    if layout.gts_dir(data_root, name).is_dir():
        groups, images = _count_tree(layout.gts_dir(data_root, name))
        return {"status": "present (not standardized)", "groups": groups, "images": images}
    return {"status": MISSING, "groups": None, "images": None}


def status_table(data_root: str | Path | None) -> list[dict[str, Any]]:
    """One entry per known dataset, then per unknown dataset found under ``<data-root>/gts``."""
    root = layout.resolve_data_root(data_root)
    entries = []
    for info in registry.all_datasets():
        present = [
            s
            for s in info.spellings()
            if (root / "gts" / s).is_dir() or layout.manifest_path(root, s).is_file()
        ]
        folder = present[0] if present else info.name
        entry = {
            "name": info.name,
            "folder": folder,
            "aliases": list(info.aliases),
            "kind": info.kind,
            "expected_groups": info.expected_groups,
            "expected_images": info.expected_images,
            "layouts": ["/".join(pair) for pair in info.layouts],
        }
        entries.append({**entry, **dataset_status(root, folder)})
    gts_root = root / "gts"
    extra = (
        [n for n in layout.list_groups(gts_root) if registry.lookup(n) is None] if gts_root.is_dir() else []
    )
    for name in extra:
        entry = {
            "name": name,
            "folder": name,
            "aliases": [],
            "kind": "",
            "expected_groups": None,
            "expected_images": None,
            "layouts": [],
        }
        entries.append({**entry, **dataset_status(root, name)})
    return entries
