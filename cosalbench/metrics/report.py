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
from cosalbench.metrics.protocols import PROTOCOLS, get_protocol
from cosalbench.metrics.results_io import check_aggregation, dataset_key, metric_value, select, source

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
    """One table cell: display text and mark (0 none, 1 best, 2 second best)."""

    text: str
    mark: int = 0


@dataclass
class Table:
    """A rendered-format-independent table plus its tidy records for CSV."""

    caption: str
    stub: str  # header of the row-label column
    columns: list[Column]
    rows: list[tuple[str, list[Cell]]]
    record_fields: list[str]
    records: list[dict] = field(default_factory=list)


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


def _index(docs: Sequence[dict], mixed: bool) -> dict[tuple[str, str, str], dict]:
    """(method, dataset, protocol) -> document; refuses duplicates and, unless ``mixed``, mixed protocols."""
    protocols = sorted({doc["protocol"] for doc in docs})
    if len(protocols) > 1 and not mixed:
        examples = "; ".join(f"{p}: {next(source(d) for d in docs if d['protocol'] == p)}" for p in protocols)
        raise CosalbenchError(
            None,
            f"results use different protocols ({examples})",
            "numbers from different protocols are not comparable; pass --allow-mixed-protocols to show them side by side",
        )
    index: dict[tuple[str, str, str], dict] = {}
    for doc in docs:
        key = (doc["method"], doc["dataset"], doc["protocol"])
        if key in index:
            raise CosalbenchError(
                doc.get("_path"),
                f"second result for method {key[0]!r} on {key[1]} ({key[2]}); first: {source(index[key])}",
                "pass only one result per method and dataset",
            )
        index[key] = doc
    return index


def results_table(
    docs: Sequence[dict],
    metrics: Sequence[str] = DEFAULT_METRICS,
    aggregation: str | None = None,
    datasets: Sequence[str] | None = None,
    allow_mixed_protocols: bool = False,
    digits: int = 3,
) -> Table:
    """Methods (rows, in order of first appearance) x (dataset, metric) columns, best values marked.

    ``aggregation=None`` uses each protocol's default (see ``default_aggregation``). With
    ``allow_mixed_protocols`` every (dataset, protocol) gets its own columns, named in the header.
    """
    docs = select(docs, datasets)
    if aggregation is not None:
        check_aggregation(aggregation)
    metrics = parse_metrics(metrics)
    mixed = allow_mixed_protocols and len({d["protocol"] for d in docs}) > 1
    index = _index(docs, allow_mixed_protocols)
    methods = list(dict.fromkeys(doc["method"] for doc in docs))
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
            values = []
            for method in methods:
                doc = index.get((method, dataset, protocol))
                values.append(None if doc is None else metric_value(doc, agg_of(protocol), metric))
            marks = rank_marks(values, metric in LOWER_IS_BETTER, digits)
            per_column.append((dataset, protocol, metric, values, marks))

    rows, records = [], []
    for i, method in enumerate(methods):
        cells = []
        for dataset, protocol, metric, values, marks in per_column:
            present = (method, dataset, protocol) in index
            text = _fmt(values[i], digits) if present else MISSING
            cells.append(Cell(text, marks[i]))
            value = "" if not present or values[i] is None else text
            records.append(
                {
                    "method": method,
                    "dataset": dataset,
                    "protocol": protocol,
                    "aggregation": agg_of(protocol),
                    "metric": metric,
                    "value": value,
                    "rank": marks[i] or "",
                }
            )
        rows.append((method, cells))

    if mixed:
        setting = "Protocols and aggregations as named in the column headers"
    else:
        protocol = docs[0]["protocol"]
        setting = (
            f"Protocol: {protocol}; aggregation: {agg_of(protocol)} ({AGGREGATION_WORDS[agg_of(protocol)]})"
        )
    caption = (
        f"{setting}; cosalbench {_versions(docs)}. Best per column in bold, second best underlined; "
        f"↑ higher is better, ↓ lower is better; {MISSING} no result."
    )
    fields = ["method", "dataset", "protocol", "aggregation", "metric", "value", "rank"]
    return Table(caption, "Method", columns, rows, fields, records)


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
        names = ", ".join(f"{d['method']} ({d['protocol']})" for d in docs)
        raise CosalbenchError(
            None, f"--by-group needs exactly two results on {dataset}, got {len(docs)}: {names}"
        )
    a, b = docs
    _index(docs, mixed=False)
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
            Column(label, a["method"], _latex_escape(a["method"]), tex),
            Column(label, b["method"], _latex_escape(b["method"]), tex),
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
                    "method_a": a["method"],
                    "value_a": "" if va is None else _fmt(va, digits),
                    "method_b": b["method"],
                    "value_b": "" if vb is None else _fmt(vb, digits),
                    "delta": "" if d is None else dtext,
                }
            )
        rows.append((group, cells))
    only = len(set(a["groups"]) ^ set(b["groups"]))
    caption = (
        f"{a['dataset']}: the {len(shown)} of {len(shared)} shared groups where B = {b['method']} and "
        f"A = {a['method']} differ most in {METRIC_LABELS[metrics[0]][0]} (|Δ| descending); per-group means; "
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
    body = [[escape(label)] + [mark(cell) for cell in cells] for label, cells in table.rows]
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
    "μ": r"$\mu$", "σ": r"$\sigma$", "Δ": r"$\Delta$",
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
            heads.append(rf"\multicolumn{{{width}}}{{c}}{{{text}}}" if col.group else "")
            if col.group:
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines += [" & " + " & ".join(heads) + r" \\", " ".join(rules)]
    lines.append(" & ".join([_latex_escape(table.stub)] + [c.latex_label for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    for label, cells in table.rows:
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
    lines += ["</thead>", "<tbody>"]
    for label, cells in table.rows:
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
