"""Benchmark tables from saved result documents: Markdown, LaTeX, CSV and HTML.

``results_table`` builds the methods x (dataset, metric) table with the best and second best value
of every column marked; ``by_group_table`` lists the groups where two methods differ most.
``render`` turns either into text. Ranks are taken on the values as displayed (rounded to
``digits``), so equal printed numbers always carry equal marks.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.profiles import ProfileColumns, column_values, device_label
from cosalbench.metrics.protocols import PROTOCOLS, get_protocol
from cosalbench.metrics.results_io import check_aggregation, dataset_key, metric_value, select, source
from cosalbench.metrics.runs import (
    UNKNOWN_TRAIN_SET,
    CellKey,
    Summary,
    index_runs,
    provenance,
    seed_of,
    seeds_text,
    summarize,
)

FORMATS = ("md", "latex", "csv", "html")
DEFAULT_METRICS = ("sm", "maxem", "maxfm", "mae")
LOWER_IS_BETTER = frozenset({"mae"})
MISSING = "–"  # no result document for this (method, dataset)
UNDEFINED = "n/a"  # the protocol does not define this metric (null in the document)
AGGREGATION_WORDS = {
    "image_mean": "mean over all images",
    "group_mean": "mean within each group, then over groups",
}
# metric key -> (plain/Markdown/HTML label, LaTeX math); arrows are added from the direction
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "sm": ("Sm", r"S_\alpha"),
    "mae": ("MAE", r"\mathrm{MAE}"),
    "maxem": ("maxEm", r"E_\xi^{\max}"),
    "meanem": ("meanEm", r"E_\xi^{\mathrm{mean}}"),
    "adpem": ("adpEm", r"E_\xi^{\mathrm{adp}}"),
    "maxfm": ("maxFm", r"F_\beta^{\max}"),
    "meanfm": ("meanFm", r"F_\beta^{\mathrm{mean}}"),
    "adpfm": ("adpFm", r"F_\beta^{\mathrm{adp}}"),
    "adpfm_meanstd": ("adpFm(μ+σ)", r"F_\beta^{\mu+\sigma}"),
    "auc": ("AUC", r"\mathrm{AUC}"),
    "wfm": ("wFm", r"F_\beta^{w}"),
}


def default_aggregation(protocol: str) -> str:
    """The aggregation a protocol's reference reports (group means for cosal-matlab); image means
    for a protocol this version does not know."""
    return get_protocol(protocol).default_aggregation if protocol in PROTOCOLS else "image_mean"


def parse_names(text: str | Sequence[str], allowed: Sequence[str], noun: str) -> list[str]:
    """``"a,b"`` (or a list) -> lower-cased names, each one of ``allowed``, duplicates dropped, in order."""
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in allowed]
    if unknown or not names:
        raise CosalbenchError(
            None, f"unknown {noun}(s) {', '.join(unknown) or '(none given)'}", f"use {', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


def parse_metrics(text: str | Sequence[str]) -> list[str]:
    """``"sm,maxfm"`` (or a list) -> validated metric keys, in the given order."""
    return parse_names(text, tuple(METRIC_LABELS), "metric")


def metric_label(metric: str, latex: bool = False) -> str:
    """Column label of a metric with its direction arrow (↑ higher is better, ↓ lower)."""
    plain, tex = METRIC_LABELS[metric]
    down = metric in LOWER_IS_BETTER
    if latex:
        arrow = r"\downarrow" if down else r"\uparrow"
        return f"${tex}{arrow}$"
    return f"{plain} {'↓' if down else '↑'}"


@dataclass
class Column:
    """One value column: its spanning header (dataset or metric), label and LaTeX label."""

    group: str
    label: str
    latex_label: str
    latex_group: str | None = None  # LaTeX markup of the group title; escaped ``group`` when None


@dataclass
class Cell:
    """One table cell: display text, mark (0 none, 1 best, 2 second best) and, where the text is not a
    plain number (mean ± std), the number an HTML table sorts by."""

    text: str
    mark: int = 0
    sort_key: str | None = None


@dataclass
class Table:
    """A rendered-format-independent table plus its tidy records for CSV.

    ``block_starts`` maps the index of a row that opens a block (``--group-by``) to the block's title.
    """

    caption: str
    stub: str  # header of the row-label column
    columns: list[Column]
    rows: list[tuple[str, list[Cell]]]
    record_fields: list[str]
    records: list[dict] = field(default_factory=list)
    block_starts: dict[int, str] = field(default_factory=dict)


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return UNDEFINED
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def rank_marks(values: Sequence[float | None], lower_is_better: bool, digits: int) -> list[int]:
    """Best (1) and second best (2) marks of a column, on values rounded to ``digits``.

    Equal rounded values share a mark; the second best is the next distinct value. Columns with
    fewer than two numbers get no marks. None and NaN are never marked.
    """
    shown = [None if v is None or math.isnan(v) else float(f"{v:.{digits}f}") for v in values]
    numbers = [v for v in shown if v is not None]
    if len(numbers) < 2:
        return [0] * len(values)
    distinct = sorted(set(numbers), reverse=not lower_is_better)
    ranks = {value: i + 1 for i, value in enumerate(distinct[:2])}
    return [0 if v is None else ranks.get(v, 0) for v in shown]


def _versions(docs: Sequence[dict]) -> str:
    return ", ".join(sorted({str(doc["cosalbench"]) for doc in docs}))


def check_protocols(docs: Sequence[dict], mixed: bool) -> None:
    """Refuse documents of different protocols unless ``mixed``."""
    protocols = sorted({doc["protocol"] for doc in docs})
    if len(protocols) > 1 and not mixed:
        examples = "; ".join(f"{p}: {next(source(d) for d in docs if d['protocol'] == p)}" for p in protocols)
        raise CosalbenchError(
            None,
            f"results use different protocols ({examples})",
            "numbers from different protocols are not comparable; pass --allow-mixed-protocols to show them side by side",
        )


RowKey = tuple[str, str]  # (block, method)


def _row_keys(index: dict[CellKey, list[dict]]) -> list[RowKey]:
    """Rows in order of first appearance, grouped by block (blocks in order of first appearance,
    the unknown training set last)."""
    rows = list(dict.fromkeys(key[:2] for key in index))
    blocks = list(dict.fromkeys(block for block, _ in rows))
    order = {block: (block == UNKNOWN_TRAIN_SET, i) for i, block in enumerate(blocks)}
    return sorted(rows, key=lambda row: order[row[0]])


def _block_marks(
    rows: Sequence[RowKey], values: Sequence[float | None], lower: bool, digits: int
) -> list[int]:
    """``rank_marks`` within each block of rows."""
    marks = [0] * len(rows)
    for block in dict.fromkeys(block for block, _ in rows):
        members = [i for i, row in enumerate(rows) if row[0] == block]
        for i, mark in zip(members, rank_marks([values[i] for i in members], lower, digits), strict=True):
            marks[i] = mark
    return marks


def _cell_text(summary: Summary, n_runs: int, digits: int) -> str:
    """A single run's value, or ``mean ± std (n)`` over seeds."""
    if n_runs == 1 or summary.mean is None:
        return _fmt(summary.mean, digits)
    if math.isnan(summary.mean) or summary.std is None:
        return f"{_fmt(summary.mean, digits)} ({summary.n})"
    return f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f} ({summary.n})"


def _seed_caption(index: dict[CellKey, list[dict]], rows: Sequence[RowKey]) -> str:
    """The caption sentence saying what a ± cell is and which seeds each method's cells average."""
    parts = []
    for block, method in rows:
        cells = {key[2:]: runs for key, runs in index.items() if key[:2] == (block, method)}
        if all(len(runs) == 1 for runs in cells.values()):
            continue
        label = f"{method} trained on {block}" if block else method
        texts = {where: seeds_text(runs) for where, runs in cells.items()}
        if len(set(texts.values())) == 1:
            parts.append(f"{label}: seeds {next(iter(texts.values()))}")
        else:
            parts.append(f"{label}: seeds " + "; ".join(f"{t} on {ds}" for (ds, _), t in texts.items()))
    return (
        "Cells with ± are the mean ± sample standard deviation (ddof=1) over n seeds, n in brackets ("
        + "; ".join(parts)
        + "); a value without ± is a single run."
    )


def _row_models(index: dict[CellKey, list[dict]], row: RowKey) -> list[str]:
    """Names a profile may match for ``row``: its documents' provenance.model, then the method."""
    models = [provenance(doc).get("model") for key, runs in index.items() if key[:2] == row for doc in runs]
    return list(dict.fromkeys([m for m in models if m] + [row[1]]))


def results_table(
    docs: Sequence[dict],
    metrics: Sequence[str] = DEFAULT_METRICS,
    aggregation: str | None = None,
    datasets: Sequence[str] | None = None,
    allow_mixed_protocols: bool = False,
    digits: int = 3,
    *,
    group_by: str | None = None,
    profiles: ProfileColumns | None = None,
) -> Table:
    """Methods (rows, in order of first appearance) x (dataset, metric) columns, best values marked.

    ``aggregation=None`` uses each protocol's default (see ``default_aggregation``). With
    ``allow_mixed_protocols`` every (dataset, protocol) gets its own columns, named in the header.
    Documents of one method that differ in ``provenance.seed`` share a cell: mean ± sample std (n),
    ranked by the mean. ``group_by="train_set"`` makes one block of rows per training set, ranked
    within the block; ``profiles`` adds Params / FLOPs / FPS columns.
    """
    docs = select(docs, datasets)
    if aggregation is not None:
        check_aggregation(aggregation)
    metrics = parse_metrics(metrics)
    check_protocols(docs, allow_mixed_protocols)
    mixed = allow_mixed_protocols and len({d["protocol"] for d in docs}) > 1
    index = index_runs(docs, group_by)
    rows = _row_keys(index)
    seeded = any(len(runs) > 1 for runs in index.values())
    if datasets:
        order = {dataset_key(name): i for i, name in enumerate(datasets)}
        docs = sorted(docs, key=lambda d: order[dataset_key(d["dataset"])])  # stable: keeps protocol order
    blocks = list(dict.fromkeys((doc["dataset"], doc["protocol"]) for doc in docs))

    def agg_of(protocol: str) -> str:
        return aggregation or default_aggregation(protocol)

    columns, per_column = [], []
    for dataset, protocol in blocks:
        group = f"{dataset} ({protocol}, {agg_of(protocol)})" if mixed else dataset
        for metric in metrics:
            columns.append(Column(group, metric_label(metric), metric_label(metric, latex=True)))
            summaries = []
            for row in rows:
                runs = index.get((*row, dataset, protocol))
                values = [metric_value(doc, agg_of(protocol), metric) for doc in runs or []]
                summaries.append(None if runs is None else summarize(values))
            means = [None if s is None else s.mean for s in summaries]
            marks = _block_marks(rows, means, metric in LOWER_IS_BETTER, digits)
            per_column.append((dataset, protocol, metric, summaries, marks))

    row_profiles = [None if profiles is None else profiles.match(_row_models(index, row)) for row in rows]
    if profiles is not None:
        columns += [Column("", label, _latex_escape(label)) for _, label, _ in column_values(None)]
    table_rows, records = [], []
    for i, (block, method) in enumerate(rows):
        cells = []
        row_fields = {} if group_by is None else {"train_set": block}
        profile_cells, profile_fields = _profile_parts(profiles, row_profiles[i])
        for dataset, protocol, metric, summaries, marks in per_column:
            summary = summaries[i]
            runs = index.get((block, method, dataset, protocol), [])
            text = MISSING if summary is None else _cell_text(summary, len(runs), digits)
            sort_key = None if summary is None or len(runs) == 1 else _sort_key(summary.mean, digits)
            cells.append(Cell(text, marks[i], sort_key))
            where = {"method": method, "dataset": dataset, "protocol": protocol}
            records.append(
                {**row_fields, **where, "aggregation": agg_of(protocol), "metric": metric}
                | _value_fields(summary, runs, digits, seeded)
                | {"rank": marks[i] or ""}
                | profile_fields
            )
        table_rows.append((method, cells + profile_cells))

    if mixed:
        setting = "Protocols and aggregations as named in the column headers"
    else:
        protocol = docs[0]["protocol"]
        setting = (
            f"Protocol: {protocol}; aggregation: {agg_of(protocol)} ({AGGREGATION_WORDS[agg_of(protocol)]})"
        )
    marking = "Best per column" + (" within each training-set block" if group_by else "")
    marking += " in bold, second best underlined" + (" (ranked by the mean)" if seeded else "")
    caption = (
        f"{setting}; cosalbench {_versions(docs)}. {marking}; "
        f"↑ higher is better, ↓ lower is better; {MISSING} no result."
    )
    if seeded:
        caption += " " + _seed_caption(index, rows)
    if group_by:
        caption += " Rows are grouped by training set (provenance.train_sets)."
    if profiles is not None:
        caption += " " + profiles.caption() + f" {MISSING}: no profile for the row."
    block_starts = {
        i: (UNKNOWN_TRAIN_SET if block == UNKNOWN_TRAIN_SET else f"trained on {block}")
        for i, (block, _) in enumerate(rows)
        if group_by and (i == 0 or rows[i - 1][0] != block)
    }
    return Table(caption, "Method", columns, table_rows, list(records[0]), records, block_starts)


def _value_fields(summary: Summary | None, runs: Sequence[dict], digits: int, seeded: bool) -> dict:
    """The CSV fields of one cell: ``value``, or ``mean, std, n, seeds`` in a table with seeds."""
    shown = "" if summary is None or summary.mean is None else _fmt(summary.mean, digits)
    if not seeded:
        return {"value": shown}
    std = None if summary is None else summary.std
    return {
        "mean": shown,
        "std": "" if std is None else _fmt(std, digits),
        "n": "" if summary is None else summary.n,
        "seeds": seeds_text(runs) if any(seed_of(doc) is not None for doc in runs) else "",
    }


def _profile_parts(profiles: ProfileColumns | None, found: dict | None) -> tuple[list[Cell], dict]:
    """A row's Params / FLOPs / FPS cells and CSV fields (none without ``--profile``)."""
    if profiles is None:
        return [], {}
    values = column_values(found)
    fields = {name: text for name, _, text in values}
    fields["profile_device"] = "" if found is None else device_label(found)
    return [Cell(text or MISSING) for _, _, text in values], fields


def _sort_key(value: float | None, digits: int) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _refuse_seed_sets(docs: Sequence[dict], dataset: str) -> None:
    """--by-group compares two single runs: say so when a method brings several seeds."""
    for method in dict.fromkeys(doc["method"] for doc in docs):
        runs = [doc for doc in docs if doc["method"] == method]
        if len(runs) > 1 and all(seed_of(doc) is not None for doc in runs):
            raise CosalbenchError(
                None,
                f"--by-group compares two single runs, and {method} has {len(runs)} results on {dataset} "
                f"(seeds {seeds_text(sorted(runs, key=seed_of))})",
                "pass one result file per method, e.g. the same seed of each",
            )


def by_group_table(
    docs: Sequence[dict],
    dataset: str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    top: int | None = 10,
    digits: int = 3,
) -> Table:
    """Groups of ``dataset`` where exactly two methods differ most, by |B − A| on the first metric.

    A is the first method given, B the second. Each metric gets columns A, B and Δ = B − A; the
    better of A and B is marked per row. Ties in |Δ| are broken by group name; NaN sorts last.
    """
    docs = select(docs, [dataset])
    metrics = parse_metrics(metrics)
    if len(docs) != 2:
        _refuse_seed_sets(docs, dataset)
        names = ", ".join(f"{d['method']} ({d['protocol']})" for d in docs)
        raise CosalbenchError(
            None, f"--by-group needs exactly two results on {dataset}, got {len(docs)}: {names}"
        )
    a, b = docs
    check_protocols(docs, mixed=False)
    index_runs(docs)  # refuses two results of one method unless they are two seeds
    name_a, name_b = a["method"], b["method"]
    if name_a == name_b:  # two seeds of one method: run-to-run differences per group
        name_a, name_b = (f"{doc['method']} (seed {seed_of(doc)})" for doc in docs)
    shared = sorted(set(a["groups"]) & set(b["groups"]))
    if not shared:
        raise CosalbenchError(None, f"{a['method']} and {b['method']} share no group of {dataset}")

    def value(doc: dict, group: str, metric: str) -> float | None:
        raw = doc["groups"][group].get("metrics", {}).get(metric)
        return None if raw is None else float(raw)

    def delta(group: str, metric: str) -> float | None:
        va, vb = value(a, group, metric), value(b, group, metric)
        return None if va is None or vb is None else vb - va

    def order_key(group: str) -> tuple[int, float, str]:
        d = delta(group, metrics[0])
        return (1, 0.0, group) if d is None or math.isnan(d) else (0, -abs(d), group)

    ordered = sorted(shared, key=order_key)
    shown = ordered if top is None else ordered[: max(top, 0)]
    columns = [Column("", "images", "images")]
    for metric in metrics:
        label, tex = metric_label(metric), metric_label(metric, latex=True)
        columns += [
            Column(label, name_a, _latex_escape(name_a), tex),
            Column(label, name_b, _latex_escape(name_b), tex),
            Column(label, "Δ (B−A)", r"$\Delta$ (B$-$A)", tex),
        ]
    rows, records = [], []
    for group in shown:
        cells = [Cell(str(a["groups"][group]["n_images"]))]
        for metric in metrics:
            va, vb, d = value(a, group, metric), value(b, group, metric), delta(group, metric)
            marks = rank_marks([va, vb], metric in LOWER_IS_BETTER, digits)
            marks = [1 if m == 1 and marks.count(1) == 1 else 0 for m in marks]
            dtext = _fmt(d, digits) if d is None or math.isnan(d) else f"{d:+.{digits}f}"
            cells += [Cell(_fmt(va, digits), marks[0]), Cell(_fmt(vb, digits), marks[1]), Cell(dtext)]
            records.append(
                {
                    "group": group,
                    "n_images": a["groups"][group]["n_images"],
                    "metric": metric,
                    "method_a": name_a,
                    "value_a": "" if va is None else _fmt(va, digits),
                    "method_b": name_b,
                    "value_b": "" if vb is None else _fmt(vb, digits),
                    "delta": "" if d is None else dtext,
                }
            )
        rows.append((group, cells))
    only = len(set(a["groups"]) ^ set(b["groups"]))
    caption = (
        f"{a['dataset']}: the {len(shown)} of {len(shared)} shared groups where B = {name_b} and "
        f"A = {name_a} differ most in {METRIC_LABELS[metrics[0]][0]} (|Δ| descending); per-group means; "
        f"protocol {a['protocol']}; cosalbench {_versions(docs)}. The better of A and B in bold."
        + (f" {only} group(s) present in only one result are left out." if only else "")
    )
    fields = ["group", "n_images", "metric", "method_a", "value_a", "method_b", "value_b", "delta"]
    return Table(caption, "Group", columns, rows, fields, records)


# ----------------------------------------------------------------------------------------- renderers


def _spans(columns: Sequence[Column]) -> list[tuple[Column, int]]:
    """Consecutive runs of columns with equal group: [(first column, width), ...]."""
    spans: list[tuple[Column, int]] = []
    for col in columns:
        if spans and spans[-1][0].group == col.group:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((col, 1))
    return spans


def _markdown(table: Table) -> str:
    def escape(text: str) -> str:
        return text.replace("|", r"\|")

    def mark(cell: Cell) -> str:
        return {1: f"**{cell.text}**", 2: f"<u>{cell.text}</u>"}.get(cell.mark, cell.text)

    header = [table.stub] + [escape(f"{c.group} {c.label}".strip()) for c in table.columns]
    body = []
    for i, (label, cells) in enumerate(table.rows):
        if i in table.block_starts:  # a block's title row: the title in the label column, cells empty
            body.append([f"*{escape(table.block_starts[i])}*"] + [""] * len(cells))
        body.append([escape(label)] + [mark(cell) for cell in cells])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]) + " |"
    return "\n".join([f"*{table.caption}*", "", line(header), rule, *[line(r) for r in body]]) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--", "−": r"$-$",
    "μ": r"$\mu$", "σ": r"$\sigma$", "Δ": r"$\Delta$", "±": r"$\pm$", "×": r"$\times$",
}  # fmt: skip


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _latex(table: Table) -> str:
    spans = _spans(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _latex_escape(table.caption) + "}",
        r"\begin{tabular}{l" + "".join("c" * width for _, width in spans) + "}",
        r"\toprule",
    ]
    if any(c.group for c in table.columns):
        heads, rules, start = [], [], 2
        for col, width in spans:
            text = col.latex_group or _latex_escape(col.group)
            heads.append(rf"\multicolumn{{{width}}}{{c}}{{{text}}}" if col.group or width > 1 else "")
            if col.group:
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines += [" & " + " & ".join(heads) + r" \\", " ".join(rules)]
    lines.append(" & ".join([_latex_escape(table.stub)] + [c.latex_label for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    for i, (label, cells) in enumerate(table.rows):
        if i in table.block_starts:
            if i:
                lines.append(r"\midrule")
            title = _latex_escape(table.block_starts[i])
            lines.append(rf"\multicolumn{{{len(cells) + 1}}}{{l}}{{\textit{{{title}}}}} \\")
        texts = []
        for cell in cells:
            text = _latex_escape(cell.text)
            texts.append({1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.mark, text))
        lines.append(" & ".join([_latex_escape(label), *texts]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _html(table: Table) -> str:
    esc = html.escape
    lines = ["<table>", f"<caption>{esc(table.caption)}</caption>", "<thead>"]
    if any(c.group for c in table.columns):
        heads = "".join(
            f'<th colspan="{width}">{esc(title)}</th>' if width > 1 else f"<th>{esc(title)}</th>"
            for title, width in ((col.group, width) for col, width in _spans(table.columns))
        )
        lines.append(f'<tr><th rowspan="2">{esc(table.stub)}</th>{heads}</tr>')
        lines.append("<tr>" + "".join(f"<th>{esc(c.label)}</th>" for c in table.columns) + "</tr>")
    else:
        lines.append(
            "<tr>"
            + "".join(f"<th>{esc(t)}</th>" for t in [table.stub] + [c.label for c in table.columns])
            + "</tr>"
        )
    lines.append("</thead>")
    for i, (label, cells) in enumerate(table.rows):
        if i in table.block_starts or i == 0:
            lines += ["</tbody>"] if i else []
            lines.append("<tbody>")
        if i in table.block_starts:
            title = esc(table.block_starts[i])
            lines.append(f'<tr class="block-head"><th colspan="{len(cells) + 1}">{title}</th></tr>')
        tds = "".join(
            "<td>"
            + {1: f"<b>{esc(c.text)}</b>", 2: f"<u>{esc(c.text)}</u>"}.get(c.mark, esc(c.text))
            + "</td>"
            for c in cells
        )
        lines.append(f"<tr><th>{esc(label)}</th>{tds}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines) + "\n"


def _csv(table: Table) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table.record_fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table.records)
    return buffer.getvalue()


RENDERERS = {"md": _markdown, "latex": _latex, "csv": _csv, "html": _html}


def render(table: Table, fmt: str = "md") -> str:
    """The table as Markdown, LaTeX (booktabs), tidy CSV or an HTML fragment."""
    if fmt not in RENDERERS:
        raise CosalbenchError(None, f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](table)


def format_for(path: str | None, fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from the file suffix of ``path``, else Markdown."""
    if fmt:
        return fmt
    suffix = "" if path is None else path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return {"tex": "latex", "csv": "csv", "html": "html", "htm": "html"}.get(suffix, "md")
