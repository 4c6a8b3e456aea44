"""Lay a canonical dataset out (as links) the way the two reference evaluators expect.

``eval-co-sod`` (zzhanghub/eval-co-sod, ``main.py --root_dir OUT``)::

    OUT/gt/<NAME>/<group>/<stem>.png
    OUT/pred/<method>/<NAME>/<group>/<stem>.png      <- the user's maps go here (same file names)

``cosal-matlab`` (the CoSal benchmark tool from the CoSOD3k authors, ``main.m``)::

    OUT/Dataset/<NAME>/Image/<group>/<stem>.jpg
    OUT/Dataset/<NAME>/GroundTruth/<group>/<stem>.png
    OUT/SalMap/<model>/<NAME>/<group>/<stem>.png      <- the user's maps go here
"""

from __future__ import annotations

from pathlib import Path

from cosalbench import io, layout
from cosalbench.datasets import registry
from cosalbench.datasets.validate import prune_empty_dirs
from cosalbench.errors import CosalbenchError

STYLES = ("eval-co-sod", "cosal-matlab")


def _targets(style: str, out: Path, dataset: str) -> tuple[Path | None, Path, Path]:
    """(image folder or None, mask folder, prediction folder) of one export style."""
    if style == "eval-co-sod":
        return None, out / "gt" / dataset, out / "pred"
    if style == "cosal-matlab":
        base = out / "Dataset" / dataset
        return base / "Image", base / "GroundTruth", out / "SalMap"
    raise CosalbenchError(None, f"unknown export style {style!r}", f"use one of {', '.join(STYLES)}")


def _mirror(src_root: Path, dst_root: Path, suffixes: tuple[str, ...], link: str) -> int:
    """Link every ``<group>/<stem><suffix>`` of ``src_root`` under ``dst_root``; drop stale files there.

    Returns the number of links made (existing identical links are kept).
    """
    made, wanted = 0, set()
    for group in layout.list_groups(src_root):
        for stem, src in layout.list_images(src_root / group, suffixes).items():
            dst = dst_root / group / f"{stem}{src.suffix}"
            wanted.add(dst)
            if dst.exists() and (dst.samefile(src) or dst.read_bytes() == src.read_bytes()):
                continue
            io.link_or_copy(src, dst, link)
            made += 1
    if dst_root.is_dir():
        for stale in sorted(
            p for p in dst_root.rglob("*") if (p.is_file() or p.is_symlink()) and p not in wanted
        ):
            stale.unlink()
        prune_empty_dirs(dst_root)
    return made


def export_dataset(
    data_root: str | Path | None, name: str, style: str, out: str | Path, link: str = "hardlink"
) -> dict[str, str | int]:
    """Export canonical dataset ``name`` in ``style`` under ``out``; returns the folders and link count.

    Re-running is cheap: identical links are kept and files no longer in the dataset are removed
    from the exported dataset folders (nothing else under ``out`` is touched).
    """
    root = layout.resolve_data_root(data_root)
    dataset = registry.canonical_name(name)
    gts = layout.gts_dir(root, dataset)
    if not gts.is_dir():
        raise CosalbenchError(
            gts, f"dataset {dataset} is not in the data root", "run `cosalbench standardize` first"
        )
    out = Path(out)
    image_dir, mask_dir, pred_dir = _targets(style, out, dataset)
    made = _mirror(gts, mask_dir, (".png",), link)
    if image_dir is not None:
        made += _mirror(layout.images_dir(root, dataset), image_dir, (".jpg",), link)
    pred_dir.mkdir(parents=True, exist_ok=True)
    return {
        "dataset": dataset,
        "style": style,
        "masks": str(mask_dir),
        "images": "" if image_dir is None else str(image_dir),
        "predictions": str(pred_dir),
        "links_made": made,
    }
