"""Lay a canonical dataset out (as links) the way the two reference evaluators expect.

``eval-co-sod`` (zzhanghub/eval-co-sod, ``main.py --root_dir OUT``)::

    OUT/gt/<NAME>/<group>/<stem>.png
    OUT/pred/<method>/<NAME>/<group>/<stem>.png      <- the user's maps go here (same file names)

``cosal-matlab`` (the CoSal benchmark tool from the CoSOD3k authors, ``main.m``)::

    OUT/Dataset/<NAME>/Image/<group>/<stem>.jpg
    OUT/Dataset/<NAME>/GroundTruth/<group>/<stem>.png
    OUT/SalMap/<model>/<NAME>/<group>/<stem>.png      <- the user's maps go here

The files exported are the manifest's (group, stem) pairs when the dataset has a manifest, else
every ``<group>/<stem>.png`` mask (and its ``.jpg`` image). Every one must be a readable, non-empty
file: a missing, broken or empty one is refused before anything is written. New links are staged
beside ``OUT`` and moved in together, so a failure part-way leaves ``OUT`` as it was.
"""

from __future__ import annotations

from pathlib import Path

from cosalbench import io, layout, staging
from cosalbench.datasets import registry
from cosalbench.datasets.inputs import refuse_unreadable
from cosalbench.datasets.validate import prune_empty_dirs, read_manifest_rows
from cosalbench.errors import CosalbenchError
from cosalbench.layout import entry_problem

STYLES = ("eval-co-sod", "cosal-matlab")


def _targets(style: str, out: Path, dataset: str) -> tuple[Path | None, Path, Path]:
    """(image folder or None, mask folder, prediction folder) of one export style."""
    if style == "eval-co-sod":
        return None, out / "gt" / dataset, out / "pred"
    if style == "cosal-matlab":
        base = out / "Dataset" / dataset
        return base / "Image", base / "GroundTruth", out / "SalMap"
    raise CosalbenchError(None, f"unknown export style {style!r}", f"use one of {', '.join(STYLES)}")


def _keys(root: Path, dataset: str) -> list[tuple[str, str]]:
    """The (group, stem) pairs to export: the manifest's, else the masks found (every entry named
    ``*.png``, readable or not, so that a broken one is refused rather than dropped)."""
    rows = read_manifest_rows(root, dataset)
    if rows:
        return sorted({(row["group"], row["stem"]) for row in rows})
    gts = layout.gts_dir(root, dataset)
    return sorted(
        (group, entry.stem)
        for group in layout.list_groups(gts)
        for entry in (gts / group).iterdir()
        if entry.suffix.lower() == ".png" and not layout.is_system_file(entry)
    )


def _already_there(dst: Path, src: Path) -> bool:
    """Whether ``dst`` already holds ``src`` (the same file, or the same bytes)."""
    if not dst.is_file():
        return False
    return dst.samefile(src) or (
        dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes()
    )


def export_dataset(
    data_root: str | Path | None, name: str, style: str, out: str | Path, link: str = "hardlink"
) -> dict[str, str | int]:
    """Export canonical dataset ``name`` in ``style`` under ``out``; returns the folders and counts.

    Re-running is cheap: identical files are kept and files no longer in the dataset are removed
    from the exported dataset folders (nothing else under ``out`` is touched).
    """
    root = layout.resolve_data_root(data_root)
    dataset = registry.dataset_folder_name(name)
    gts = layout.gts_dir(root, dataset)
    if not gts.is_dir():
        raise CosalbenchError(
            gts, f"dataset {dataset} is not in the data root", "run `cosalbench standardize` first"
        )
    out = Path(out).absolute()
    image_dir, mask_dir, pred_dir = _targets(style, out, dataset)
    trees = [(gts, mask_dir, ".png")]
    if image_dir is not None:
        trees.append((layout.images_dir(root, dataset), image_dir, ".jpg"))
    keys = _keys(root, dataset)
    if not keys:
        raise CosalbenchError(
            gts, f"dataset {dataset} has no masks to export", "run `cosalbench standardize`"
        )
    planned = [
        (src_root / group / f"{stem}{suffix}", dst_root / group / f"{stem}{suffix}")
        for src_root, dst_root, suffix in trees
        for group, stem in keys
    ]
    problems = [(src, problem) for src, _ in planned if (problem := entry_problem(src)) is not None]
    refuse_unreadable(problems, len(planned), "files to export", "re-run standardize or validate the dataset")
    made = 0
    with staging.staged_outputs(out) as stage:
        for src, dst in planned:
            if not _already_there(dst, src):
                io.link_or_copy(src, stage.path(dst), link)
                made += 1
        pred_dir.mkdir(parents=True, exist_ok=True)
    wanted = {dst for _, dst in planned}
    removed = 0
    for _, dst_root, _ in trees:
        if dst_root.is_dir():
            for stale in sorted(p for p in dst_root.rglob("*") if not p.is_dir() and p not in wanted):
                stale.unlink()
                removed += 1
            prune_empty_dirs(dst_root)
    return {
        "dataset": dataset,
        "style": style,
        "masks": str(mask_dir),
        "images": "" if image_dir is None else str(image_dir),
        "predictions": str(pred_dir),
        "files": len(planned),
        "links_made": made,
        "kept": len(planned) - made,
        "removed": removed,
    }
