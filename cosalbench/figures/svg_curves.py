"""Small inline-SVG curve panels (PR, F and E against threshold, ROC) for the HTML report.

Hand-written SVG keeps the report self-contained, small and byte-deterministic: one polyline per
method, axes from 0 to 1, no fonts or scripts. Points are rounded to 0.1 px.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

PANELS = {  # kind -> (title, x curve key, y curve key, x label, y label)
    "pr": ("Precision-recall", "recall", "precision", "recall", "precision"),
    "fm": ("F-measure", "threshold", "fm", "threshold", "F"),
    "em": ("E-measure", "threshold", "em", "threshold", "E"),
    "roc": ("ROC", "fpr", "tpr", "false positive rate", "true positive rate"),
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")  # fmt: skip
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 280, 230, 42, 10, 24, 36


def colour(index: int) -> str:
    """The colour of the ``index``-th method (the same in every panel and table)."""
    return PALETTE[index % len(PALETTE)]


def _points(xs: Sequence[float], ys: Sequence[float]) -> str:
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    return " ".join(
        f"{PAD_L + x * plot_w:.1f},{PAD_T + (1 - y) * plot_h:.1f}"
        for x, y in zip(xs, ys, strict=True)
        if x is not None and y is not None
    )


def panel(kind: str, curves: Sequence[tuple[str, dict | None]]) -> str:
    """One SVG panel of ``kind``; ``curves`` is ``[(label, {curve key: values} or None), ...]``."""
    title, x_key, y_key, x_label, y_label = PANELS[kind]
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="curve" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{WIDTH / 2:.0f}" y="15" text-anchor="middle" class="t">{html.escape(title)}</text>',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" class="frame"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = PAD_L + tick * plot_w, PAD_T + (1 - tick) * plot_h
        parts.append(f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{PAD_T + plot_h}" class="grid"/>')
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PAD_L + plot_w}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{PAD_T + plot_h + 12}" text-anchor="middle">{tick:g}</text>')
        parts.append(f'<text x="{PAD_L - 4}" y="{y + 3:.1f}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{PAD_L + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle">{x_label}</text>')
    parts.append(
        f'<text x="11" y="{PAD_T + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 11 {PAD_T + plot_h / 2:.0f})">{y_label}</text>'
    )
    for index, (label, data) in enumerate(curves):
        xs, ys = (data or {}).get(x_key), (data or {}).get(y_key)
        if not xs or not ys:
            continue
        parts.append(
            f'<polyline fill="none" stroke="{colour(index)}" stroke-width="1.5" points="{_points(xs, ys)}">'
            f"<title>{html.escape(label)}</title></polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)
