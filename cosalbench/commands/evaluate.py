"""``cosalbench evaluate PRED --dataset NAME``: score prediction folders, write JSON/CSV, print a table."""

from __future__ import annotations

from pathlib import Path

import click

from cosalbench.metrics import results
from cosalbench.metrics.evaluate import check_outputs, plan_evaluation, run_plan
from cosalbench.metrics.protocols import PROTOCOLS
from cosalbench.parallel import available_cpus


@click.command()
@click.argument("pred", type=click.Path(path_type=Path))
@click.option("--dataset", "datasets", multiple=True, required=True, help="Dataset name (repeatable).")
@click.option("--data-root", type=click.Path(path_type=Path), help="Data root [$COSALBENCH_DATA or ./data].")
@click.option(
    "--protocol",
    type=click.Choice([*PROTOCOLS, "all"]),
    default="pysodmetrics",
    show_default=True,
    help="'all': every protocol, written as <out>/<protocol>/<method>/<Dataset>.json",
)
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
@click.option(
    "--allow-incomplete-gt",
    is_flag=True,
    help="Score a ground truth that differs from its manifest or registry counts (documents say gt_complete: false).",
)
@click.option(
    "--pred-ext",
    metavar="EXT",
    help="Only predictions with this extension (e.g. png), when a folder holds two files per image.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result documents as JSON (notes go to stderr)."
)
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
    allow_incomplete_gt: bool,
    pred_ext: str | None,
    as_json: bool,
) -> None:
    """Evaluate PRED (a method folder PRED/<Dataset>/... or a folder of methods PRED/<method>/<Dataset>/...)."""
    plan = plan_evaluation(pred, datasets, data_root, strict, allow_incomplete_gt, pred_ext)
    names = [name.strip() for name in measures.split(",") if name.strip()]
    protocols = PROTOCOLS if protocol == "all" else (protocol,)
    outs = {name: out / name if protocol == "all" else out for name in protocols}
    for name in protocols:
        check_outputs(outs[name], plan)
    documents: list[dict] = []
    reused: set[tuple[str, str]] = set()  # (protocol, "method/dataset") kept from an earlier run
    for name in protocols:
        kept: list[str] = []
        documents += run_plan(
            plan,
            name,
            outs[name],
            workers or available_cpus(),
            wfm,
            measures=names,
            overwrite=overwrite,
            reused=kept,
        )
        reused.update((name, key) for key in kept)
    if as_json:
        click.echo(results.documents_json(documents), nl=False)
    else:
        for name in protocols:  # one table per protocol: their numbers are not comparable
            click.echo(results.render_table([doc for doc in documents if doc["protocol"] == name]))
    notes = [f"skipped {skipped}: no prediction folder" for skipped in plan.skipped]
    notes += results.render_notes(documents).splitlines()
    if reused:
        notes.append(
            f"reused {len(reused)} of {len(documents)} results (inputs and options unchanged; --overwrite "
            f"rescores): {', '.join(sorted(key for _, key in reused))}"
        )
    for doc in documents:
        json_path, csv_path = results.result_paths(outs[doc["protocol"]], doc["method"], doc["dataset"])
        verb = "kept" if (doc["protocol"], f"{doc['method']}/{doc['dataset']}") in reused else "wrote"
        notes.append(f"{verb} {json_path} and {csv_path.name}")
    for line in notes:
        click.echo(line, err=as_json)
