"""``cosalbench predict cbcs``: CBCS maps for canonical datasets, optionally evaluated."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--dataset", "datasets", multiple=True, required=True, help="Dataset name (repeatable).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Canonical data root.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Prediction root folder.")
@click.option("--method", default="cbcs", show_default=True, help="Method folder name under --out.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
@click.option(
    "--seed", type=int, default=5489, show_default=True, help="k-means stream seed (Matlab's default)."
)
@click.option("--stretch", is_flag=True, help="Min-max stretch each map (the Matlab release does not).")
@click.option("--overwrite", is_flag=True, help="Recompute groups whose maps already exist.")
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Predict groups from their readable images and count the others (default: refuse to start).",
)
@click.option("--evaluate", "run_evaluation", is_flag=True, help="Score the maps when done.")
@click.option(
    "--protocol",
    default="pysodmetrics",
    show_default=True,
    help="Metric protocol for --evaluate: pysodmetrics, eval-co-sod or cosal-matlab.",
)
def cbcs(
    datasets: tuple[str, ...],
    data_root: Path | None,
    out: Path,
    method: str,
    workers: int,
    seed: int,
    stretch: bool,
    overwrite: bool,
    skip_unreadable: bool,
    run_evaluation: bool,
    protocol: str,
) -> None:
    """Cluster-based co-saliency (Fu et al., TIP 2013): a training-free CPU baseline.

    Writes OUT/METHOD/DATASET/GROUP/STEM.png for every image of each dataset. An unreadable
    image (broken link, folder, empty or corrupt file) stops the run with one line naming it,
    unless --skip-unreadable; a run that would write no map at all always fails.
    """
    from cosalbench.baselines.cbcs import CBCSParams, predict_dataset
    from cosalbench.layout import resolve_data_root
    from cosalbench.staging import check_output_folder

    root = resolve_data_root(data_root)
    check_output_folder(out)
    if run_evaluation:  # refuse a bad protocol before hours of prediction, not after
        from cosalbench.metrics.protocols import get_protocol

        get_protocol(protocol)
    params = CBCSParams(seed=seed, stretch=stretch)
    folders = [
        predict_dataset(
            root,
            name,
            out,
            method=method,
            workers=workers,
            overwrite=overwrite,
            params=params,
            skip_unreadable=skip_unreadable,
        )
        for name in datasets
    ]
    if run_evaluation:
        from cosalbench.metrics.evaluate import evaluate_predictions
        from cosalbench.metrics.results import render_notes, render_table

        documents = evaluate_predictions(
            pred_root=out / method,
            datasets=[folder.name for folder in folders],
            data_root=root,
            protocol=protocol,
            workers=workers,
        )
        click.echo(render_table(documents))
        click.echo(render_notes(documents), nl=False)
