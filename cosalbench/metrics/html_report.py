"""``cosalbench report --format html``: one self-contained HTML page to browse results.

The page holds the methods x datasets table (best / second best marked, sortable by clicking a
header), PR / F / E / ROC curves per dataset (inline SVG), a sortable per-group table per dataset
whose rows open that group's thumbnails (image, GT and every method's map with its score, as PNG
data URIs), and where every number came from (protocol, aggregation, cosalbench version, counts,
fingerprints, files). Nothing is loaded from the network: CSS, script and pictures are inline, so
the file works opened from disk and can be mailed or archived. Same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

import cv2

from cosalbench import io
from cosalbench.errors import CosalbenchError
from cosalbench.figures import svg_curves
from cosalbench.figures.selection import choose
from cosalbench.figures.sources import Key, PictureSources, finite, read_image_scores
from cosalbench.metrics.profiles import ProfileColumns
from cosalbench.metrics.report import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    Table,
    default_aggregation,
    metric_label,
    parse_metrics,
    rank_marks,
    results_table,
)
from cosalbench.metrics.runs import run_labels, seed_of, train_set_of

esc = html.escape
CURVE_PANELS = ("pr", "fm", "em", "roc")

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}.setting{background:#f4f6f8;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}tbody th{text-align:left;font-weight:600}
tr.block-head th{background:#f7f7f7;font-style:italic}
thead th{background:#f0f0f0}table.sortable thead th[data-col]{cursor:pointer;user-select:none}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
td.m1{font-weight:700}td.m2{text-decoration:underline}tr.group-row{cursor:pointer}
tr.group-row:hover{background:#eef4ff}tr.group-row.open{background:#dde9ff}
.curves{display:flex;flex-wrap:wrap;gap:8px}svg.curve text{font-size:10px;fill:#333}
svg.curve .t{font-size:12px;font-weight:600}svg.curve .frame{fill:none;stroke:#888}
svg.curve .grid{stroke:#e3e3e3}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.thumbs{border:1px solid #bbb;padding:8px;margin:8px 0;background:#fafafa}
.thumbs table td,.thumbs table th{border:none;padding:2px;text-align:center;vertical-align:top}
.thumbs img{display:block;image-rendering:auto}.thumbs figcaption{font-size:11px}
.thumbs figure{margin:0}.best{font-weight:700}.note{color:#666;font-size:12px}code{font-size:12px}
"""

SCRIPT = """
(function(){
  function key(cell){var v=cell.getAttribute('data-v');if(v===null||v===''){return null;}
    var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
  function sortBy(table,th){
    var col=Number(th.getAttribute('data-col'));
    var lower=th.getAttribute('data-lower')==='1';var dir=th.getAttribute('data-dir');
    dir=dir?(dir==='asc'?'desc':'asc'):(lower?'asc':'desc');
    table.querySelectorAll('thead th[data-dir]').forEach(function(h){h.removeAttribute('data-dir');});
    th.setAttribute('data-dir',dir);
    Array.prototype.forEach.call(table.tBodies,function(body){
      var rows=Array.prototype.filter.call(body.rows,function(r){return !r.classList.contains('block-head');});
      rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
        if(x===null&&y===null){return 0;}if(x===null){return 1;}if(y===null){return -1;}
        var c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
        return dir==='asc'?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('thead th[data-col]').forEach(function(th){
      th.addEventListener('click',function(){sortBy(table,th);});});});
  document.querySelectorAll('tr.group-row').forEach(function(row){
    row.addEventListener('click',function(){
      var section=row.closest('section');var target=document.getElementById(row.getAttribute('data-thumbs'));
      var opening=target.hidden;
      section.querySelectorAll('.thumbs').forEach(function(t){t.hidden=true;});
      section.querySelectorAll('tr.group-row').forEach(function(r){r.classList.remove('open');});
      if(opening){target.hidden=false;row.classList.add('open');target.scrollIntoView({block:'nearest'});}
    });});
})();
"""


def _number(text: str) -> str:
    """``text`` when it is a number (the sort key of a cell), else empty."""
    try:
        value = float(text)
    except ValueError:
        return ""
    return "" if math.isnan(value) else text


def _summary_table(table: Table) -> str:
    """The methods x (dataset, metric) table with marks and sort keys."""
    heads, start = [], 1
    spans: list[tuple[str, int]] = []
    for col in table.columns:
        if spans and spans[-1][0] == col.group:
            spans[-1] = (col.group, spans[-1][1] + 1)
        else:
            spans.append((col.group, 1))
    for title, width in spans:
        heads.append(f'<th colspan="{width}">{esc(title)}</th>')
    labels = []
    for i, col in enumerate(table.columns, start=start):
        lower = "1" if col.label.endswith("↓") else "0"
        labels.append(f'<th data-col="{i}" data-lower="{lower}" title="click to sort">{esc(col.label)}</th>')
    lines = [
        '<table class="sortable" id="summary-table">',
        f'<thead><tr><th rowspan="2" data-col="0">{esc(table.stub)}</th>{"".join(heads)}</tr>',
        f"<tr>{''.join(labels)}</tr></thead><tbody>",
    ]
    for i, (label, cells) in enumerate(table.rows):
        if i in table.block_starts:  # one tbody per block: sorting keeps rows inside their block
            lines += ["</tbody><tbody>"] if i else []
            title = esc(table.block_starts[i])
            lines.append(f'<tr class="block-head"><th colspan="{len(cells) + 1}">{title}</th></tr>')
        tds = "".join(
            f'<td data-v="{esc(_number(c.text) if c.sort_key is None else c.sort_key)}"'
            + (f' class="m{c.mark}"' if c.mark else "")
            + f">{esc(c.text)}</td>"
            for c in cells
        )
        lines.append(f'<tr><th data-v="{esc(label)}">{esc(label)}</th>{tds}</tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _aggregation(doc: dict, aggregation: str | None) -> str:
    return aggregation or default_aggregation(doc["protocol"])


def _curves(docs: Sequence[dict], labels: Sequence[str], aggregation: str | None) -> str:
    curves = [
        (label, doc["curves"].get(_aggregation(doc, aggregation)))
        for doc, label in zip(docs, labels, strict=True)
    ]
    panels = "".join(svg_curves.panel(kind, curves) for kind in CURVE_PANELS)
    legend = "".join(
        f'<span><i style="background:{svg_curves.colour(i)}"></i>{esc(label)}</span>'
        for i, label in enumerate(labels)
    )
    return f'<div class="curves">{panels}</div><div class="legend">{legend}</div>'


def _format(value: float | None, digits: int) -> tuple[str, str]:
    """(display text, sort key) of a value."""
    if value is None:
        return "n/a", ""
    if math.isnan(value):
        return "nan", ""
    text = f"{value:.{digits}f}"
    return text, text


def _data_uri(pixels) -> str:
    array = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    return "data:image/png;base64," + base64.b64encode(io.encode_image(array, ".png")).decode("ascii")


def _thumbnails(
    sources: PictureSources,
    stems: Sequence[str],
    group: str,
    docs: Sequence[dict],
    labels: Sequence[str],
    scores: dict[str, dict[Key, dict]],
    metric: str,
    height: int,
) -> str:
    """One row per image: image, GT, then every method's map with its ``metric``."""
    methods = [doc["method"] for doc in docs]
    head = "".join(f"<th>{esc(t)}</th>" for t in ["image", "GT", *labels])
    rows = []
    for stem in stems:
        key = (group, stem)
        size = (max(8, round(height * sources.aspect(key))), height)
        tiles = sources.tiles(key, methods, size)
        values = [scores[label].get(key, {}).get(metric) for label in labels]
        numbers = [v if finite(v) else None for v in values]
        present = [v for v in numbers if v is not None]
        best = (min if metric in LOWER_IS_BETTER else max)(present) if present else None
        cells = []
        for i, pixels in enumerate(tiles):
            alt = stem if i == 0 else ("GT" if i == 1 else labels[i - 2])
            caption = stem if i == 0 else ""
            if i >= 2:
                text, _ = _format(values[i - 2], 3)
                mark = ' class="best"' if numbers[i - 2] is not None and numbers[i - 2] == best else ""
                caption = f"<span{mark}>{esc(METRIC_LABELS[metric][0])} {text}</span>"
            elif i == 0:
                caption = esc(caption)
            cells.append(
                f'<td><figure><img src="{_data_uri(pixels)}" width="{size[0]}" height="{size[1]}" '
                f'alt="{esc(alt)}"><figcaption>{caption}</figcaption></figure></td>'
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _thumbnail_stems(
    scores: dict[str, dict[Key, dict]], group: str, metric: str, per_group: int
) -> tuple[list[str], str]:
    """Up to ``per_group`` images of ``group``: where the methods differ most (or the hardest, for
    one method), among images every method scored; plus a note saying how they were chosen."""
    pick = "disagree" if len(scores) > 1 else "hardest"
    try:
        stems = choose(scores, metric, pick, groups=[group], per_group=per_group)[0][1]
    except CosalbenchError:  # no image of the group has a finite score from every method
        return [], f" (no image has a finite {METRIC_LABELS[metric][0]} from every method)"
    how = "where the methods differ most" if pick == "disagree" else "lowest scores first"
    return stems, f", {how} in {METRIC_LABELS[metric][0]}"


def _group_section(
    index: int,
    docs: Sequence[dict],
    labels: Sequence[str],
    metrics: Sequence[str],
    digits: int,
    sources: PictureSources | None,
    per_group: int,
    height: int,
) -> str:
    groups = sorted(set().union(*(doc["groups"] for doc in docs)))
    scores = (
        {label: read_image_scores(doc) for doc, label in zip(docs, labels, strict=True)} if sources else {}
    )
    spans = "".join(f'<th colspan="{len(labels)}">{esc(metric_label(metric))}</th>' for metric in metrics)
    head = [
        f'<tr><th rowspan="2" data-col="0">group</th><th rowspan="2" data-col="1">images</th>{spans}</tr><tr>'
    ]
    col = 2
    for metric in metrics:
        lower = "1" if metric in LOWER_IS_BETTER else "0"
        for label in labels:
            head.append(f'<th data-col="{col}" data-lower="{lower}">{esc(label)}</th>')
            col += 1
    head.append("</tr>")
    rows, panels = [], []
    for j, group in enumerate(groups):
        target = f"thumbs-{index}-{j}"
        n_images = max(doc["groups"].get(group, {}).get("n_images", 0) for doc in docs)
        cells = [f'<th data-v="{esc(group)}">{esc(group)}</th>', f'<td data-v="{n_images}">{n_images}</td>']
        for metric in metrics:
            entries = [doc["groups"].get(group) for doc in docs]
            values = [None if e is None else e.get("metrics", {}).get(metric) for e in entries]
            marks = rank_marks(values, metric in LOWER_IS_BETTER, digits)
            for entry, value, mark in zip(entries, values, marks, strict=True):
                text, key = _format(value, digits) if entry is not None else ("–", "")
                cells.append(f'<td data-v="{key}"' + (' class="m1"' if mark == 1 else "") + f">{text}</td>")
        rows.append(f'<tr class="group-row" data-thumbs="{target}">{"".join(cells)}</tr>')
        if sources is None:
            body = '<p class="note">Thumbnails need the maps: rerun with --pred-root (and --data-root).</p>'
        else:
            stems, note = _thumbnail_stems(scores, group, metrics[0], per_group)
            body = f'<p class="note">{esc(f"{len(stems)} of {n_images} images{note}")}</p>' + _thumbnails(
                sources, stems, group, docs, labels, scores, metrics[0], height
            )
        panels.append(f'<div class="thumbs" id="{target}" hidden><h3>{esc(group)}</h3>{body}</div>')
    return (
        f'<h3>Per group (click a group for its images)</h3><table class="sortable groups" id="groups-{index}">'
        f"<thead>{''.join(head)}</thead><tbody>{''.join(rows)}</tbody></table>{''.join(panels)}"
    )


def _fingerprints(doc: dict) -> str:
    found = {k: v for k, v in doc.items() if "fingerprint" in k.lower()}
    return "; ".join(f"{k}: {v}" for k, v in sorted(found.items())) if found else "–"


def _provenance(docs: Sequence[dict]) -> str:
    head = "".join(f"<th>{t}</th>" for t in ("method", "dataset", "protocol", "cosalbench", "images scored / expected",
                                              "groups", "training set", "seed", "fingerprints", "file"))  # fmt: skip
    rows = []
    for doc in docs:
        expected = doc["n_images"] + len(doc.get("missing_predictions", []))
        seed = seed_of(doc)
        cells = [doc["method"], doc["dataset"], doc["protocol"], doc["cosalbench"], f"{doc['n_images']} / {expected}",
                 str(doc["n_groups"]), train_set_of(doc), "–" if seed is None else seed, _fingerprints(doc),
                 doc.get("_path", "")]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    return f'<table id="provenance"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def html_report(
    docs: Sequence[dict],
    metrics: Sequence[str] = ("sm", "maxem", "maxfm", "mae"),
    aggregation: str | None = None,
    allow_mixed_protocols: bool = False,
    digits: int = 3,
    sources: dict[str, PictureSources] | None = None,
    per_group: int = 6,
    thumb_height: int = 72,
    group_by: str | None = None,
    profiles: ProfileColumns | None = None,
) -> str:
    """The whole page as text. ``sources`` (dataset -> PictureSources) adds the group thumbnails;
    ``group_by`` and ``profiles`` shape the summary table as in ``results_table``. Curves and per-group
    tables show every document, seeds of one method side by side (labelled with the seed)."""
    metrics = parse_metrics(metrics)
    table = results_table(
        docs, metrics, aggregation, None, allow_mixed_protocols, digits, group_by=group_by, profiles=profiles
    )
    versions = ", ".join(sorted({str(doc["cosalbench"]) for doc in docs}))
    body = [
        "<header><h1>cosalbench report</h1>",
        f'<p class="setting" id="setting">{esc(table.caption)}</p>',
        f"<p>cosalbench {esc(versions)} · {len(docs)} result documents · "
        f"{len({d['method'] for d in docs})} methods · {len({d['dataset'] for d in docs})} datasets</p></header>",
        "<section><h2>Methods × datasets</h2>",
        '<p class="note">Click a column header to sort (best first, click again to reverse).</p>',
        _summary_table(table),
        "</section>",
    ]
    for index, dataset in enumerate(dict.fromkeys(doc["dataset"] for doc in docs)):
        subset = [doc for doc in docs if doc["dataset"] == dataset]
        labels = run_labels(subset)
        settings = ", ".join(
            dict.fromkeys(f"{d['protocol']}, {_aggregation(d, aggregation)}" for d in subset)
        )
        images = ", ".join(dict.fromkeys(str(d["n_images"]) for d in subset))
        body += [
            f'<section class="dataset" id="dataset-{index}"><h2>{esc(dataset)}</h2>',
            f'<p class="note">{esc(settings)} · {images} images · {subset[0]["n_groups"]} groups</p>',
            _curves(subset, labels, aggregation),
            _group_section(
                index, subset, labels, metrics, digits, (sources or {}).get(dataset), per_group, thumb_height
            ),
            "</section>",
        ]
    body += ["<section><h2>Where the numbers come from</h2>", _provenance(docs), "</section>"]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>cosalbench report</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def picture_sources(
    docs: Sequence[dict], pred_root: Path | None, data_root: Path | None
) -> dict[str, PictureSources] | None:
    """Sources of every dataset of ``docs`` when ``pred_root`` is given, else None."""
    if pred_root is None:
        return None
    for doc in docs:
        key = (doc["method"], doc["dataset"], doc["protocol"])  # one run scored under two protocols is fine
        same = [d for d in docs if (d["method"], d["dataset"], d["protocol"]) == key]
        if len(same) > 1:  # maps are found by method name: one folder cannot hold several runs' maps
            raise CosalbenchError(
                doc.get("_path"),
                f"{len(same)} results of {doc['method']} on {doc['dataset']} (e.g. seeds), but thumbnails "
                f"read the maps of one run from {pred_root}",
                "omit --pred-root, or pass one run's results",
            )
    datasets = dict.fromkeys(doc["dataset"] for doc in docs)
    return {
        name: PictureSources(name, [d["method"] for d in docs if d["dataset"] == name], pred_root, data_root)
        for name in datasets
    }
