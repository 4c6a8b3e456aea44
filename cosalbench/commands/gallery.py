"""``cosalbench gallery RESULTS... --dataset NAME``: a qualitative figure of images, GT and maps."""

from __future__ import annotations

from pathlib import Path

import click

from cosalbench.commands.picture_options import data_root_option, pred_root_option
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.protocols import SCALAR_KEYS
from cosalbench.metrics.results_io import collect_results, select


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", required=True, help="dataset to show")
@click.option("--groups", default="auto", show_default=True, help="'auto' (chosen by --pick) or G1,G2,...")
@click.option(
    "--n-groups", type=click.IntRange(min=1), default=4, show_default=True, help="groups shown (auto)"
)
@click.option(
    "--per-group", type=click.IntRange(min=1), default=4, show_default=True, help="images per group"
)
@click.option(
    "--pick",
    type=click.Choice(["disagree", "hardest", "easiest", "random"]),
    default="disagree",
    show_default=True,
    help="which groups and images: where methods differ most, lowest/highest mean score, or random",
)
@click.option(
    "--metric", type=click.Choice(SCALAR_KEYS), default="sm", show_default=True, help="score --pick ranks by"
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of --pick random")
@click.option("--layout", type=click.Choice(["rows", "columns"]), default="rows", show_default=True)
@click.option("--annotate", type=click.Choice(SCALAR_KEYS), help="print this per-image score under each map")
@click.option("--tile-height", type=click.IntRange(min=16), default=128, show_default=True, help="pixels")
@pred_root_option
@data_root_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="figure file, .pdf or .png [default: <dataset>-gallery.pdf]",
)
def gallery(
    results: tuple[Path, ...],
    dataset: str,
    groups: str,
    n_groups: int,
    per_group: int,
    pick: str,
    metric: str,
    seed: int,
    layout: str,
    annotate: str | None,
    tile_height: int,
    pred_root: Path | None,
    data_root: Path | None,
    out: Path | None,
) -> None:
    """Images, ground truth and every method's map for a few groups, as a paper-ready PDF or PNG.

    Groups and images are chosen from the per-image CSVs next to the result JSONs (--pick); the
    maps are read from --pred-root, the images and masks from --data-root.
    """
    from cosalbench.figures.gallery import figure_format, write_gallery
    from cosalbench.figures.selection import choose
    from cosalbench.figures.sources import PictureSources, read_image_scores

    docs = select(collect_results(results), [dataset])
    methods = [doc["method"] for doc in docs]
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise CosalbenchError(
            None,
            f"several results for method(s) {', '.join(repeated)} on {dataset}",
            "pass one result per method (one protocol)",
        )
    out = out or Path(f"{docs[0]['dataset']}-gallery.pdf")
    figure_format(out)
    scores = {doc["method"]: read_image_scores(doc) for doc in docs}
    named = None if groups.strip().lower() == "auto" else _split(groups)
    selection = choose(scores, metric, pick, named, n_groups, per_group, seed)
    sources = PictureSources(docs[0]["dataset"], methods, pred_root, data_root)
    write_gallery(sources, selection, methods, out, scores, annotate, layout, tile_height)
    shown = sum(len(stems) for _, stems in selection)
    click.echo(
        f"wrote {out} ({len(selection)} groups, {shown} images, {len(methods)} methods, --pick {pick}: "
        + ", ".join(group for group, _ in selection)
        + ")"
    )
