"""``cosalbench build-coco-seg``: rebuild COCO-SEG from the COCO2017 annotations and verify it."""

from __future__ import annotations

import json
import os

import click

from cosalbench.io import LINK_MODES


def _splits(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """Parse ``train,val`` into a tuple of split names."""
    from cosalbench.datasets.coco_seg import SPLITS

    parts = tuple(part.strip() for part in value.split(",") if part.strip())
    bad = [part for part in parts if part not in SPLITS]
    if bad or not parts:
        raise click.BadParameter(f"{value!r}: use train, val or train,val")
    return parts


@click.command("build-coco-seg")
@click.option(
    "--coco",
    "coco_dir",
    required=True,
    type=click.Path(path_type=str),
    help="COCO2017 folder holding annotations/ and train2017/, val2017/.",
)
@click.option(
    "--data-root",
    type=click.Path(),
    default=None,
    help="Canonical data root (default: $COSALBENCH_DATA, else ./data).",
)
@click.option(
    "--splits",
    default="train,val",
    show_default=True,
    callback=_splits,
    help="Splits to build: train -> COCO-SEG, val -> COCO-SEG-val (groups always come from train).",
)
@click.option(
    "--min-area",
    default=4000.0,
    show_default=True,
    type=float,
    help="An image joins a group when a non-crowd instance's area is strictly above this.",
)
@click.option(
    "--min-group-size",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="Drop groups with fewer train images.",
)
@click.option(
    "--link",
    type=click.Choice(LINK_MODES),
    default="hardlink",
    show_default=True,
    help="How images are placed in their group folders.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=min(8, os.cpu_count() or 1),
    show_default=True,
    help="Processes drawing masks.",
)
@click.option("--dry-run", is_flag=True, help="Annotations only: groups, digest, manifest without masks.")
@click.option(
    "--strict/--skip-missing",
    default=True,
    show_default=True,
    help="Fail (default) when an image of a group is missing, a broken link, a folder or empty; "
    "--skip-missing builds without them and lists them in the report.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a different or finished build instead of refusing/resuming."
)
@click.option(
    "--area-from",
    type=click.Choice(["field", "mask"]),
    default="field",
    show_default=True,
    help="Instance area from the annotation `area` field (reference) or rasterised pixels.",
)
@click.option(
    "--area-rule",
    type=click.Choice(["instance", "union"]),
    default="instance",
    show_default=True,
    help="One instance above --min-area (reference) or all non-crowd instances together.",
)
@click.option("--exclude-crowd-from-masks", is_flag=True, help="Leave crowd regions out of the masks.")
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report documents as JSON instead of tables.")
def build_coco_seg(
    coco_dir: str,
    data_root: str | None,
    splits: tuple[str, ...],
    min_area: float,
    min_group_size: int,
    link: str,
    workers: int,
    dry_run: bool,
    strict: bool,
    overwrite: bool,
    area_from: str,
    area_rule: str,
    exclude_crowd_from_masks: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """Rebuild COCO-SEG (and COCO-SEG-val) from COCO2017 and check it against the published list."""
    from cosalbench.datasets import coco_seg

    options = coco_seg.RuleOptions(min_area, min_group_size, area_from, area_rule, exclude_crowd_from_masks)
    reports = coco_seg.build_coco_seg(
        coco_dir, data_root, splits, options, link, workers, dry_run, strict, overwrite, progress
    )
    if as_json:
        click.echo(json.dumps(reports, indent=2))
        return
    click.echo("\n\n".join(coco_seg.format_summary(report) for report in reports))
