"""``cosalbench standardize``, ``validate`` and ``export``: downloads -> canonical layout -> evaluators."""

from __future__ import annotations

import json

import click

from cosalbench import io
from cosalbench.datasets import export as export_lib
from cosalbench.datasets import standardize as standardize_lib
from cosalbench.datasets import validate as validate_lib

data_root_option = click.option(
    "--data-root",
    type=click.Path(),
    default=None,
    help="Canonical data root (default: $COSALBENCH_DATA, else ./data).",
)
link_option = click.option(
    "--link",
    type=click.Choice(io.LINK_MODES),
    default="hardlink",
    show_default=True,
    help="How files are placed (a hard link across file systems falls back to a copy).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.command()
@click.argument("name")
@click.option("--src", required=True, type=click.Path(), help="The extracted download (a folder).")
@data_root_option
@click.option("--images", default=None, help="Image folder relative to --src (skips layout probing).")
@click.option("--masks", default=None, help="Mask folder relative to --src (with --images).")
@link_option
@click.option(
    "--overwrite", is_flag=True, help="Replace another standardization of NAME / follow a changed source."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@json_option
@click.pass_context
def standardize(
    ctx: click.Context,
    name: str,
    src: str,
    data_root: str | None,
    images: str | None,
    masks: str | None,
    link: str,
    overwrite: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """Put the download of dataset NAME into the canonical layout and validate it.

    Exit status: 0 complete, 3 usable with warnings, 2 unusable or bad input.
    """
    report, stats = standardize_lib.standardize_dataset(
        name, src, data_root, images, masks, link=link, overwrite=overwrite, progress=progress
    )
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for line in validate_lib.format_report(report):
            click.echo(line)
        click.echo(
            f"wrote {stats.images_written} image(s) and {stats.masks_written} mask(s), "
            f"{stats.unchanged} pair(s) already up to date, {stats.removed} stale file(s) removed"
        )
    ctx.exit(report["exit_code"])


@click.command()
@click.argument("name")
@data_root_option
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@json_option
@click.pass_context
def validate(ctx: click.Context, name: str, data_root: str | None, progress: bool, as_json: bool) -> None:
    """Re-check a standardized dataset against its manifest (missing, changed, extra files).

    Exit status: 0 intact and complete, 3 usable with warnings, 2 unusable or no manifest.
    """
    result = validate_lib.validate_dataset(data_root, name, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for line in validate_lib.format_validation(result):
            click.echo(line)
    ctx.exit(result["exit_code"])


@click.command()
@click.argument("name")
@click.option("--style", required=True, type=click.Choice(export_lib.STYLES), help="Target evaluator layout.")
@click.option("--out", required=True, type=click.Path(), help="Folder to write the layout into.")
@data_root_option
@link_option
def export(name: str, style: str, out: str, data_root: str | None, link: str) -> None:
    """Lay a standardized dataset out as an external evaluator expects (links, not copies)."""
    result = export_lib.export_dataset(data_root, name, style, out, link)
    dataset = result["dataset"]
    click.echo(
        f"exported {dataset} for {style}: {result['files']} of {result['files']} file(s) in place "
        f"({result['links_made']} new, {result['kept']} already there, {result['removed']} stale removed)"
    )
    if result["images"]:
        click.echo(f"  images:      {result['images']}")
    click.echo(f"  masks:       {result['masks']}")
    click.echo(f"  predictions: put maps in {result['predictions']}/<method>/{dataset}/<group>/<stem>.png")
