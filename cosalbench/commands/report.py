"""``cosalbench report``, ``plot`` and ``compare``: tables, curve figures and paired tests from results."""

from __future__ import annotations

from pathlib import Path

import click

from cosalbench.commands.picture_options import data_root_option, pred_root_option
from cosalbench.errors import CosalbenchError
from cosalbench.io import write_text
from cosalbench.metrics.profiles import ProfileColumns, choose_profiles, load_profiles
from cosalbench.metrics.results_io import AGGREGATIONS, collect_results, select
from cosalbench.metrics.runs import GROUPINGS, index_runs, seed_of, seeds_text

METRICS_HELP = (
    "comma-separated metrics: sm, mae, maxem, meanem, adpem, maxfm, meanfm, adpfm, adpfm_meanstd, auc, wfm"
)
AGGREGATION_HELP = (
    "image_mean or group_mean (default: the protocol's own, group_mean for cosal-matlab, else image_mean)"
)
results_argument = click.argument(
    "results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _emit(text: str, out: Path | None) -> None:
    """Print ``text``, or write it atomically to ``out`` and say so."""
    if out is None:
        click.echo(text, nl=False)
    else:
        write_text(out, text)
        click.echo(f"wrote {out}", err=True)


@click.command()
@results_argument
@click.option(
    "--datasets", help="comma-separated datasets, in column order (default: all, in order of appearance)"
)
@click.option("--metrics", default="sm,maxem,maxfm,mae", show_default=True, help=METRICS_HELP)
@click.option("--aggregation", type=click.Choice(AGGREGATIONS), help=AGGREGATION_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "latex", "csv", "html", "html-table"]),
    help="default: from --out suffix (.tex .csv .html), else md; html: a self-contained page with "
    "curves, per-group tables and thumbnails; html-table: the table alone as an HTML fragment",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the table here instead of printing it",
)
@click.option(
    "--allow-mixed-protocols",
    is_flag=True,
    help="put results of different protocols side by side, one column block each",
)
@click.option("--by-group", is_flag=True, help="list the groups where two methods differ most on --dataset")
@click.option("--dataset", help="dataset of --by-group")
@click.option(
    "--top", type=click.IntRange(min=1), default=10, show_default=True, help="groups listed by --by-group"
)
@click.option("--all-groups", is_flag=True, help="with --by-group: list every shared group")
@click.option(
    "--digits",
    type=click.IntRange(0, 8),
    default=3,
    show_default=True,
    help="decimals shown (ranks use the shown values)",
)
@click.option(
    "--explain",
    is_flag=True,
    help="the same metrics under every protocol and aggregation side by side, and which convention "
    "causes each difference (re-scores the maps of --pred-root)",
)
@pred_root_option
@data_root_option
@click.option("--thumbnails", type=click.IntRange(min=1), default=6, show_default=True,
              help="html: images shown per group (where the methods differ most)")  # fmt: skip
@click.option(
    "--group-by",
    type=click.Choice(GROUPINGS),
    help="train_set: one block of rows per training set (provenance.train_sets), ranked within the block",
)
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="JSON of 'cosalbench profile MODEL --json --out FILE' (or a folder of them; repeatable): adds "
    "Params (M), FLOPs (G/image) and FPS (images/s) columns, matched by provenance.model, else method name",
)
@click.option(
    "--profile-device",
    help="use the profiles measured on this device (cpu, cuda, cuda:0 or a device name such as 'NVIDIA H200')",
)
def report(
    results: tuple[Path, ...],
    datasets: str | None,
    metrics: str,
    aggregation: str | None,
    fmt: str | None,
    out: Path | None,
    allow_mixed_protocols: bool,
    by_group: bool,
    dataset: str | None,
    top: int,
    all_groups: bool,
    digits: int,
    explain: bool,
    pred_root: Path | None,
    data_root: Path | None,
    thumbnails: int,
    group_by: str | None,
    profile_paths: tuple[Path, ...],
    profile_device: str | None,
) -> None:
    """One table of methods x (dataset, metric) from result JSONs (files or folders), best values marked.

    Best per column in bold, second best underlined (direction-aware: lower MAE is better). The
    caption names the protocol and aggregation; results of different protocols are refused unless
    --allow-mixed-protocols. Results of one method that differ in provenance.seed share a cell:
    mean ± sample std (n), ranked by the mean.
    """
    from cosalbench.metrics.report import by_group_table, format_for, render, results_table

    docs = collect_results(results)
    if profile_device and not profile_paths:
        raise CosalbenchError(None, "--profile-device chooses among --profile files", "pass --profile FILE")
    for flag, given in (("--group-by", group_by), ("--profile", profile_paths)):
        if given and (by_group or explain):
            other = "--by-group" if by_group else "--explain"
            raise CosalbenchError(None, f"{flag} shapes the methods table and does not apply to {other}")
    profiles = _profile_columns(profile_paths, profile_device)
    if explain:
        _explain(select(docs, _split(datasets)), _split(metrics), pred_root, data_root, out)
        return
    fmt = format_for(None if out is None else str(out), fmt)
    if fmt == "html" and not by_group:
        from cosalbench.metrics.html_report import html_report, picture_sources

        docs = select(docs, _split(datasets))
        sources = picture_sources(docs, pred_root, data_root)
        page = html_report(
            docs,
            _split(metrics),
            aggregation,
            allow_mixed_protocols,
            digits,
            sources,
            thumbnails,
            group_by=group_by,
            profiles=profiles,
        )
        _emit(page, out)
        _unmatched_profiles(profiles)
        return
    fmt = "html" if fmt == "html-table" else fmt
    if by_group:
        if not dataset:
            raise CosalbenchError(None, "--by-group needs --dataset NAME")
        table = by_group_table(docs, dataset, _split(metrics), top=None if all_groups else top, digits=digits)
    else:
        if dataset:
            raise CosalbenchError(
                None, "--dataset is for --by-group", "use --datasets to choose table columns"
            )
        table = results_table(
            docs,
            _split(metrics),
            aggregation,
            _split(datasets),
            allow_mixed_protocols,
            digits,
            group_by=group_by,
            profiles=profiles,
        )
    _emit(render(table, fmt), out)
    _unmatched_profiles(profiles)


def _unmatched_profiles(profiles: ProfileColumns | None) -> None:
    """Name on stderr every --profile file that no row of the table matched."""
    for note in [] if profiles is None else profiles.unmatched_notes():
        click.echo(f"note: {note}", err=True)


def _profile_columns(paths: tuple[Path, ...], device: str | None) -> ProfileColumns | None:
    """The --profile files as table columns (None without any); notes on skipped files go to stderr."""
    if not paths:
        return None
    by_model, notes = choose_profiles(load_profiles(paths), device)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    return ProfileColumns(by_model)


def _explain(
    docs: list[dict], metrics: list[str], pred_root: Path | None, data_root: Path | None, out: Path | None
) -> None:
    """``report --explain``: re-score under every protocol when the maps are given, else compare documents."""
    from cosalbench.metrics import explain
    from cosalbench.metrics.report import parse_metrics

    metrics = parse_metrics(metrics)
    for (_, method, dataset, _), runs in index_runs(docs).items():
        if len(runs) > 1:  # explain shows one run per method and dataset under every protocol
            raise CosalbenchError(
                runs[1].get("_path"),
                f"--explain takes one run per method and dataset, and {method} has seeds "
                f"{seeds_text(runs)} on {dataset}",
                "pass one seed's results",
            )
    if pred_root is None:
        _emit(explain.render_documents(docs, metrics), out)
        return
    explanations = explain.explain(docs, pred_root, data_root, metrics)
    notes = "".join(f"note: {line}\n" for line in explain.mismatches(explanations, docs))
    _emit(explain.render(explanations) + notes, out)


@click.command()
@results_argument
@click.option("--dataset", help="dataset to plot (needed when the results hold several)")
@click.option("--curves", default="pr,fm", show_default=True, help="comma-separated panels: pr, fm, em, roc")
@click.option("--aggregation", type=click.Choice(AGGREGATIONS), help=AGGREGATION_HELP)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="figure file, .png or .pdf [default: <dataset>-curves.png]",
)
@click.option("--title", help="figure title (default: dataset, protocol and aggregation)")
def plot(
    results: tuple[Path, ...],
    dataset: str | None,
    curves: str,
    aggregation: str | None,
    out: Path | None,
    title: str | None,
) -> None:
    """Curves of several methods on one dataset in one figure (PR, F and E against threshold, ROC)."""
    from cosalbench.metrics.plots import plot_curves
    from cosalbench.metrics.report import default_aggregation

    docs = select(collect_results(results), [dataset] if dataset else None)
    names = sorted({doc["dataset"] for doc in docs})
    if len(names) > 1:
        raise CosalbenchError(
            None, f"results hold several datasets ({', '.join(names)})", "choose one with --dataset"
        )
    aggregation = aggregation or default_aggregation(docs[0]["protocol"])
    if out is None and Path(names[0]).name != names[0]:  # a hostile name must not choose where to write
        raise CosalbenchError(
            docs[0]["_path"], f"dataset name {names[0]!r} is not a plain file name", "pass --out"
        )
    out = out or Path(f"{names[0]}-curves.png")
    path = plot_curves(docs, out, curves=_split(curves), aggregation=aggregation, title=title)
    click.echo(f"wrote {path} ({len(docs)} methods, {names[0]}, {aggregation})")


def _one_result(path: Path, dataset: str | None) -> dict:
    """The single result document of ``path`` (a file, or a method folder with ``dataset``)."""
    docs = select(collect_results([path]), [dataset] if dataset else None)
    if len(docs) != 1:
        found = ", ".join(
            f"{d['method']}/{d['dataset']} ({d['protocol']}"
            + ("" if seed_of(d) is None else f", seed {seed_of(d)}")
            + ")"
            for d in docs
        )
        raise CosalbenchError(
            path, f"holds {len(docs)} results ({found}), expected one", "name a result file or pass --dataset"
        )
    return docs[0]


@click.command()
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", help="dataset to compare (needed when A or B is a folder with several)")
@click.option("--metrics", default="sm,maxem,maxfm,mae", show_default=True, help=METRICS_HELP)
@click.option("--aggregation", type=click.Choice(AGGREGATIONS), help=AGGREGATION_HELP)
@click.option(
    "--n-boot",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="bootstrap resamples of groups",
)
@click.option(
    "--n-perm",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="random label swaps of the permutation test",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="random seed (results are deterministic for a seed)",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="write the printout (or JSON) here"
)
@click.option(
    "--figure",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also draw the per-group B − A of the first metric as bars (.png or .pdf)",
)
def compare(
    a: Path,
    b: Path,
    dataset: str | None,
    metrics: str,
    aggregation: str | None,
    n_boot: int,
    n_perm: int,
    seed: int,
    as_json: bool,
    out: Path | None,
    figure: Path | None,
) -> None:
    """Paired comparison of methods A and B on the same images: B − A per metric with a 95% bootstrap
    interval over groups, a paired permutation p-value, and per-group wins/losses/ties."""
    from cosalbench.metrics.compare import compare_results, comparison_json, format_comparison

    doc_a, doc_b = _one_result(a, dataset), _one_result(b, dataset)
    result = compare_results(doc_a, doc_b, _split(metrics), aggregation, n_boot, n_perm, seed)
    text = comparison_json(result) if as_json else format_comparison(result)
    if figure is None:
        _emit(text, out)
        return
    from cosalbench.metrics.plots import plot_group_differences

    plot_group_differences(doc_a, doc_b, figure, metric=_split(metrics)[0])
    try:  # both outputs or neither: a printout that cannot be written takes the new figure with it
        _emit(text, out)
    except BaseException:
        figure.unlink(missing_ok=True)
        raise
    click.echo(f"wrote {figure}", err=True)
