"""``cosalbench demo``: synthetic set, simulated predictions, evaluation, table and curve plots."""

from __future__ import annotations

from pathlib import Path

import click

from cosalbench.demo import run_demo
from cosalbench.metrics import results


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("cosalbench-demo"), show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
def demo(out: Path, workers: int) -> None:
    """Generate a small synthetic co-saliency set and four methods' maps, evaluate them, plot curves,
    draw a gallery of the groups where they disagree and write an HTML report."""
    output = run_demo(out, workers)
    click.echo(results.render_table(output.documents))
    click.echo(results.render_notes(output.documents), nl=False)
    click.echo(f"dataset      {output.data_root} (images/, gts/, manifests/)")
    click.echo(f"predictions  {output.pred_root}")
    dataset = output.documents[0]["dataset"]
    click.echo(f"results      {output.results_dir} (<method>/{dataset}.json, <method>/{dataset}.images.csv)")
    click.echo(f"curves       {output.plot}")
    click.echo(f"gallery      {output.gallery} (where the methods disagree most)")
    click.echo(f"report       {output.report} (open it in a browser)")
