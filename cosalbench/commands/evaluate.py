"""``cosalbench evaluate PRED --dataset NAME``: score prediction folders, write JSON/CSV, print a table."""

from __future__ import annotations

from pathlib import Path

import click

from cosalbench.metrics import results
from cosalbench.metrics.evaluate import plan_evaluation, run_plan
from cosalbench.metrics.protocols import PROTOCOLS
from cosalbench.parallel import available_cpus


@click.command()
@click.argument("pred", type=click.Path(path_type=Path))
@click.option("--dataset", "datasets", multiple=True, required=True, help="Dataset name (repeatable).")
@click.option("--data-root", type=click.Path(path_type=Path), help="Data root [$COSALBENCH_DATA or ./data].")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="pysodmetrics", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes decoding and scoring images [default: every available CPU].",
)
@click.option("--wfm", is_flag=True, help="Also compute the weighted F-measure (slower).")
@click.option(
    "--metrics",
    "measures",
    default="",
    metavar="NAMES",
    help="Also compute PySODMetrics' FmeasureV2 measures, comma-separated: handlers (iou, dice, ber, kappa, "
    "spec, sen, pre, rec, fpr, oa, fm: all forms) or single measures (maxiou, adpdice, overall_biiou, ...).",
)
@click.option(
    "--overwrite", is_flag=True, help="Rescore every result, even those whose inputs are unchanged."
)
@click.option("--strict", is_flag=True, help="Fail on any missing prediction instead of skipping it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result documents as JSON.")
def evaluate(
    pred: Path,
    datasets: tuple[str, ...],
    data_root: Path | None,
    protocol: str,
    out: Path,
    workers: int | None,
    wfm: bool,
    measures: str,
    overwrite: bool,
    strict: bool,
    as_json: bool,
) -> None:
    """Evaluate PRED (a method folder PRED/<Dataset>/... or a folder of methods PRED/<method>/<Dataset>/...)."""
    plan = plan_evaluation(pred, datasets, data_root, strict)
    names = [name.strip() for name in measures.split(",") if name.strip()]
    reused: list[str] = []
    documents = run_plan(
        plan,
        protocol,
        out,
        workers or available_cpus(),
        wfm,
        measures=names,
        overwrite=overwrite,
        reused=reused,
    )
    if as_json:
        click.echo(results.documents_json(documents), nl=False)
        return
    click.echo(results.render_table(documents))
    for skipped in plan.skipped:
        click.echo(f"skipped {skipped}: no prediction folder")
    click.echo(results.render_notes(documents), nl=False)
    if reused:
        click.echo(
            f"reused {len(reused)} of {len(documents)} results (inputs and options unchanged; --overwrite "
            f"rescores): {', '.join(reused)}"
        )
    for doc in documents:
        json_path, csv_path = results.result_paths(out, doc["method"], doc["dataset"])
        verb = "kept" if f"{doc['method']}/{doc['dataset']}" in reused else "wrote"
        click.echo(f"{verb} {json_path} and {csv_path.name}")
