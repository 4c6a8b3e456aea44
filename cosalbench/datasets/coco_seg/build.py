"""Building a split on disk: masks, image links, manifest and report, resumable and all-or-nothing."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cosalbench.datasets.coco_masks import (
    GroupMember,
    ImageResult,
    ImageTask,
    ignore_interrupts,
    process_image,
)
from cosalbench.datasets.coco_seg.annotations import gc_paused
from cosalbench.datasets.coco_seg.plan import SplitPlan, build_stamp, image_stem, plan_splits, stamp_path
from cosalbench.datasets.coco_seg.report import MANIFEST_COLUMNS, manifest_rows, split_report
from cosalbench.datasets.coco_seg.rule import RuleOptions
from cosalbench.datasets.locking import dataset_lock
from cosalbench.errors import CosalbenchError
from cosalbench.io import LINK_MODES, is_temp_path, write_csv, write_json
from cosalbench.layout import (
    entry_problem,
    gts_dir,
    images_dir,
    manifest_path,
    report_path,
    resolve_data_root,
)
from cosalbench.staging import check_output_folder


def build_coco_seg(
    coco_dir: str | Path,
    data_root: str | Path | None = None,
    splits: Sequence[str] = ("train", "val"),
    options: RuleOptions | None = None,
    link: str = "hardlink",
    workers: int = 1,
    dry_run: bool = False,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Build COCO-SEG (and COCO-SEG-val) under ``data_root``; return one report per split.

    ``dry_run`` reads only the annotation files: it selects the groups, computes the digests and
    writes the manifest (empty ``mask_pixels``) and report, unless a full build is already there.
    A member JPEG that is missing, a broken link, a folder or empty is left out of the build and
    listed in the report; with ``strict`` it is an error before anything is written. A split whose
    rule selects no group, or none of whose images can be used, is an error.
    """
    options = options or RuleOptions()
    if link not in LINK_MODES:
        raise CosalbenchError(None, f"unknown link mode {link!r}", f"use one of {', '.join(LINK_MODES)}")
    if workers < 1:
        raise CosalbenchError(None, "--workers must be at least 1")
    root = resolve_data_root(data_root)
    check_output_folder(root, "--data-root")
    # The parsed annotations are millions of acyclic containers: cyclic collections would only
    # re-walk them (seconds each), so the collector stays paused for the whole build.
    with gc_paused():
        plans = plan_splits(coco_dir, splits, options, progress)
        with contextlib.ExitStack() as locks:
            for plan in plans:
                locks.enter_context(dataset_lock(root, plan.dataset, "build-coco-seg"))
            return _build_plans(plans, root, options, link, workers, dry_run, strict, overwrite, progress)


def _build_plans(
    plans: Sequence[SplitPlan],
    root: Path,
    options: RuleOptions,
    link: str,
    workers: int,
    dry_run: bool,
    strict: bool,
    overwrite: bool,
    progress: bool,
) -> list[dict[str, Any]]:
    """Check every split, then build (or list) them: nothing is written when one is unusable."""
    if dry_run:
        for plan in plans:
            _refuse_empty_selection(plan)
        return [_dry_run(plan, root, options, link) for plan in plans]
    stamps = {plan.dataset: build_stamp(plan, options, link) for plan in plans}
    replace = {
        plan.dataset: _check_output(root, plan.dataset, stamps[plan.dataset], overwrite) for plan in plans
    }
    unusable = {plan.dataset: _unusable_images(plan) for plan in plans}
    for plan in plans:
        _refuse_empty_selection(plan)
        _refuse_unusable_images(plan, unusable[plan.dataset], strict)
    for plan in plans:
        if replace[plan.dataset]:
            _clear_output(root, plan.dataset)
    return [
        _build_split(
            plan, root, options, link, workers, unusable[plan.dataset], stamps[plan.dataset], progress
        )
        for plan in plans
    ]


def _unusable_images(plan: SplitPlan) -> dict[int, str]:
    """Member images whose JPEG cannot be used (missing, a broken link, a folder, empty) -> why."""
    found = {image_id: entry_problem(plan.source(image_id)) for image_id in plan.selection.image_groups}
    return {image_id: problem for image_id, problem in found.items() if problem is not None}


def _refuse_empty_selection(plan: SplitPlan) -> None:
    """A split whose rule selects no (group, image) pair is not a dataset."""
    if plan.selection.n_pairs == 0:
        raise CosalbenchError(
            plan.coco.path,
            f"the rule selects 0 pairs in {len(plan.selection.pairs)} groups from "
            f"{len(plan.coco.images):,} annotated images: {plan.dataset} would be empty",
            "check --coco, or lower --min-area / --min-group-size",
        )


def _refuse_unusable_images(plan: SplitPlan, unusable: Mapping[int, str], strict: bool) -> None:
    """With ``strict`` any unusable member image is an error; without, only all of them."""
    total = len(plan.selection.image_groups)
    if not unusable or (not strict and len(unusable) < total):
        return
    first = min(unusable)
    hint = "--strict is on: pass --skip-missing to build without them" if strict else "check --coco"
    raise CosalbenchError(
        plan.source(first),
        f"{unusable[first]}; {len(unusable):,} image(s) of {total:,} in the {plan.dataset} groups "
        "are missing or unusable",
        hint,
    )


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _check_output(root: Path, dataset: str, stamp: Mapping[str, Any], overwrite: bool) -> bool:
    """Whether the data root's build of ``dataset`` must be cleared first (False: resume or fresh);
    refuse a different build without ``overwrite``."""
    path = stamp_path(root, dataset)
    previous: Any = None
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
    if previous == stamp and not overwrite:
        return False
    occupied = [
        folder for folder in (images_dir(root, dataset), gts_dir(root, dataset)) if _has_files(folder)
    ]
    if previous is None and not occupied:
        return False
    if not overwrite:
        if previous is None:
            where, what = occupied[0], "files not made by build-coco-seg"
        else:
            where, what = path, _stamp_difference(previous, stamp)
        raise CosalbenchError(
            where,
            f"holds a different {dataset} build ({what})",
            "pass --overwrite to replace it, or choose another --data-root",
        )
    return True


def _clear_output(root: Path, dataset: str) -> None:
    """Remove a previous build of ``dataset`` (its folders, manifest, report and stamp)."""
    for folder in (images_dir(root, dataset), gts_dir(root, dataset)):
        if folder.is_dir():
            shutil.rmtree(folder)
    for file in (manifest_path(root, dataset), report_path(root, dataset), stamp_path(root, dataset)):
        file.unlink(missing_ok=True)


def _stamp_difference(previous: Mapping[str, Any], stamp: Mapping[str, Any]) -> str:
    """``key: old -> new`` for each stamp entry that differs."""
    flat_old = {**previous.get("parameters", {}), **{k: v for k, v in previous.items() if k != "parameters"}}
    flat_new = {**stamp["parameters"], **{k: v for k, v in stamp.items() if k != "parameters"}}
    changed = [
        f"{k}: {_short(flat_old.get(k))} -> {_short(flat_new[k])}"
        for k in flat_new
        if flat_old.get(k) != flat_new[k]
    ]
    return "; ".join(changed) or "unreadable build stamp"


def _short(value: Any) -> str:
    """A stamp value for a message (digests cut to 12 characters)."""
    text = str(value)
    return f"{text[:12]}..." if len(text) == 64 else text


def _remove_temporaries(root: Path, dataset: str) -> None:
    """Delete the temporary files an interrupted run may have left (never a final name)."""
    for folder in (images_dir(root, dataset), gts_dir(root, dataset)):
        if not folder.is_dir():
            continue
        for group in os.scandir(folder):
            if group.is_dir():
                for entry in os.scandir(group.path):
                    if is_temp_path(Path(entry.name)):
                        os.unlink(entry.path)


def _image_tasks(
    plan: SplitPlan, root: Path, options: RuleOptions, link: str, skip: frozenset[int]
) -> Iterator[ImageTask]:
    """One task per member image present on disk, in image id order."""
    selection, coco = plan.selection, plan.coco
    for image_id, category_ids in selection.image_groups.items():
        if image_id in skip:
            continue
        image = coco.images[image_id]
        members = tuple(
            GroupMember(
                cid,
                selection.names[cid],
                tuple(
                    inst.segmentation
                    for inst in coco.instances[(image_id, cid)]
                    if not (options.exclude_crowd_from_masks and inst.crowd)
                ),
            )
            for cid in category_ids
        )
        yield ImageTask(
            image_id, image_stem(image_id), str(plan.source(image_id)), image.height, image.width, members,
            str(images_dir(root, plan.dataset)), str(gts_dir(root, plan.dataset)), link,
        )  # fmt: skip


def _map_images(tasks: Iterable[ImageTask], workers: int) -> Iterator[ImageResult]:
    """Run :func:`process_image` in this process or in a spawned pool (no copy of the parsed JSON)."""
    if workers == 1:
        yield from map(process_image, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=ignore_interrupts) as pool:
        yield from pool.imap_unordered(process_image, tasks, chunksize=16)


def _build_split(
    plan: SplitPlan,
    root: Path,
    options: RuleOptions,
    link: str,
    workers: int,
    unusable: Mapping[int, str],
    stamp: Mapping[str, Any],
    progress: bool,
) -> dict[str, Any]:
    """Write masks, links, manifest and report of one split (resuming finished files)."""
    write_json(stamp_path(root, plan.dataset), stamp)
    _remove_temporaries(root, plan.dataset)
    pixels: dict[tuple[int, int], int] = {}
    masks_written = links_made = 0
    missing = frozenset(unusable)
    _remove_outputs_of(plan, root, missing)
    total = sum(len(plan.selection.image_groups[i]) for i in plan.selection.image_groups if i not in missing)
    tasks = _image_tasks(plan, root, options, link, missing)
    try:
        with tqdm(
            total=total, desc=f"{plan.dataset} masks", unit="mask", disable=not progress, file=sys.stderr
        ) as bar:
            for result in _map_images(tasks, workers):
                for cid, count in result.pixels.items():
                    pixels[(cid, result.image_id)] = count
                masks_written += result.masks_written
                links_made += result.links_made
                bar.update(len(result.pixels))
    except OSError as exc:
        raise CosalbenchError(
            exc.filename or gts_dir(root, plan.dataset),
            f"cannot write the build ({exc.strerror})",
            "free disk space or fix permissions, then rerun: finished files are kept",
        ) from exc
    rows = manifest_rows(plan.coco, plan.selection, pixels, skip=missing)
    report = split_report(plan, options, link, rows, dry_run=False)
    report.update(
        missing_images=[f"{plan.image_dir.name}/{plan.coco.images[i].file_name}" for i in sorted(missing)],
        missing_problems={
            f"{plan.image_dir.name}/{plan.coco.images[i].file_name}": unusable[i] for i in sorted(missing)
        },
        n_missing_images=len(missing),
        n_skipped_pairs=sum(len(plan.selection.image_groups[i]) for i in missing),
        masks_written=masks_written,
        masks_kept=len(rows) - masks_written,
        links_made=links_made,
    )
    _write_outputs(root, plan.dataset, rows, report)
    return report


def _remove_outputs_of(plan: SplitPlan, root: Path, image_ids: frozenset[int]) -> None:
    """Delete what an earlier run placed for images that are now unusable (the manifest leaves them out)."""
    for image_id in image_ids:
        stem = image_stem(image_id)
        for cid in plan.selection.image_groups[image_id]:
            group = plan.selection.names[cid]
            for path in (images_dir(root, plan.dataset) / group / f"{stem}.jpg",
                         gts_dir(root, plan.dataset) / group / f"{stem}.png"):  # fmt: skip
                if os.path.lexists(path) and not path.is_dir():
                    path.unlink()


def _dry_run(plan: SplitPlan, root: Path, options: RuleOptions, link: str) -> dict[str, Any]:
    """Select and verify without images; write manifest and report unless a full build is there."""
    rows = manifest_rows(plan.coco, plan.selection)
    report = split_report(plan, options, link, rows, dry_run=True)
    built = (
        stamp_path(root, plan.dataset).is_file()
        or _has_files(images_dir(root, plan.dataset))
        or _has_files(gts_dir(root, plan.dataset))
    )
    if built:
        report["note"] = "a full build is present: its manifest and report were left untouched"
    else:
        _write_outputs(root, plan.dataset, rows, report)
    return report


def _write_outputs(root: Path, dataset: str, rows: Sequence[Sequence[Any]], report: dict[str, Any]) -> None:
    report["manifest"] = str(manifest_path(root, dataset))
    report["report"] = str(report_path(root, dataset))
    write_csv(manifest_path(root, dataset), MANIFEST_COLUMNS, rows)
    write_json(report_path(root, dataset), report)
