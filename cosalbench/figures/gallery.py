"""Qualitative figures: images, ground truth and each method's maps, one block per group.

``layout="rows"`` puts image, GT and the methods in rows and the images of a group side by side
(one block of columns per group, group name above it); ``"columns"`` transposes that. Tiles are
resized to one size (height ``tile_height`` pixels, width from the median aspect of the shown
masks) and drawn unresampled, so a PDF embeds each tile once as a raster at TILE_DPI while labels
stay vector text. Files are written atomically with fixed metadata: reruns give identical bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cosalbench.errors import CosalbenchError
from cosalbench.figures.selection import Selection
from cosalbench.figures.sources import Key, PictureSources, finite
from cosalbench.io import atomic_path
from cosalbench.metrics.plots import METADATA
from cosalbench.metrics.report import LOWER_IS_BETTER, METRIC_LABELS

LAYOUTS = ("rows", "columns")
TILE_DPI = 200  # pixels per inch of a tile in the figure (and of the PNG)
GAP = 0.03  # inches between tiles
BLOCK_GAP = 0.14  # inches between group blocks
LABEL_PT = 7
ANNOTATION_PT = 5.5
ANNOTATION_H = 0.13  # inches under a tile for its score
TITLE_H = 0.2  # inches for group titles / column headers


@dataclass(frozen=True)
class Tile:
    """One tile of the grid: where it goes (inches from the top left) and what it shows."""

    x: float
    y: float
    pixels: np.ndarray
    caption: str | None = None
    bold: bool = False


@dataclass(frozen=True)
class Grid:
    """A laid-out gallery: figure size, tiles and text labels (all in inches from the top left)."""

    width: float
    height: float
    tile_size: tuple[float, float]
    tiles: list[Tile]
    labels: list[tuple[float, float, str, dict]]


def _caption(metric: str, value: float | None) -> str:
    return f"{METRIC_LABELS[metric][0]} " + ("n/a" if not finite(value) else f"{value:.3f}")


def _best(values: Sequence[float | None], metric: str) -> int | None:
    """Index of the single best finite value (None on ties or without numbers)."""
    numbers = [(v if metric not in LOWER_IS_BETTER else -v) if finite(v) else -np.inf for v in values]
    top = max(numbers, default=-np.inf)
    return None if top == -np.inf or numbers.count(top) > 1 else numbers.index(top)


def _label_width(texts: Sequence[str], points: float) -> float:
    """Rough width in inches of the longest text (DejaVu Sans averages ~0.6 em per character)."""
    return _on_pixels(max(len(t) for t in texts) * points * 0.6 / 72 + 0.1)


def _on_pixels(inches: float) -> float:
    """``inches`` rounded up to whole pixels at TILE_DPI, so tiles land on the PNG's pixel grid."""
    return math.ceil(round(inches * TILE_DPI, 6)) / TILE_DPI


def layout_grid(
    selection: Selection,
    methods: Sequence[str],
    tiles_of: Mapping[Key, list[np.ndarray]],
    scores: Mapping[str, Mapping[Key, Mapping[str, float | None]]] | None = None,
    annotate: str | None = None,
    layout: str = "rows",
) -> Grid:
    """Place every tile and label of the gallery; ``tiles_of[key]`` is [image, GT, *method maps]."""
    if layout not in LAYOUTS:
        raise CosalbenchError(None, f"unknown layout {layout!r}", f"use one of {', '.join(LAYOUTS)}")
    kinds = ["Image", "GT", *methods]
    first = tiles_of[selection[0][0], selection[0][1][0]][0]
    tw, th = first.shape[1] / TILE_DPI, first.shape[0] / TILE_DPI
    annotation_h = ANNOTATION_H if annotate else 0.0
    tiles, labels = [], []
    rows = layout == "rows"
    margin = _label_width(kinds if rows else [g for g, _ in selection], LABEL_PT) if rows else 0.25

    def captions(key: Key) -> list[tuple[str | None, bool]]:
        if not annotate or scores is None:
            return [(None, False)] * len(kinds)
        values = [scores[m][key].get(annotate) for m in methods]
        best = _best(values, annotate)
        return [(None, False), (None, False)] + [
            (_caption(annotate, v), i == best) for i, v in enumerate(values)
        ]

    if rows:
        row_y = [TITLE_H + i * (th + annotation_h + GAP) for i in range(len(kinds))]
        x = margin
        for group, stems in selection:
            block_w = len(stems) * (tw + GAP) - GAP
            labels.append((x + block_w / 2, TITLE_H / 2, group, {"ha": "center", "va": "center"}))
            for stem in stems:
                for pixels, y, (text, bold) in zip(
                    tiles_of[group, stem], row_y, captions((group, stem)), strict=True
                ):
                    tiles.append(Tile(x, y, pixels, text, bold))
                x += tw + GAP
            x += BLOCK_GAP - GAP
        for kind, y in zip(kinds, row_y, strict=True):
            labels.append((margin - 0.05, y + th / 2, kind, {"ha": "right", "va": "center"}))
        width, height = x - BLOCK_GAP + 0.05, row_y[-1] + th + annotation_h + 0.05
    else:
        col_x = [margin + i * (tw + GAP) for i in range(len(kinds))]
        for kind, x in zip(kinds, col_x, strict=True):
            labels.append((x + tw / 2, TITLE_H / 2, kind, {"ha": "center", "va": "center"}))
        y = TITLE_H
        for group, stems in selection:
            block_h = len(stems) * (th + annotation_h + GAP) - GAP
            labels.append(
                (margin / 2, y + block_h / 2, group, {"ha": "center", "va": "center", "rotation": 90})
            )
            for stem in stems:
                for pixels, x, (text, bold) in zip(
                    tiles_of[group, stem], col_x, captions((group, stem)), strict=True
                ):
                    tiles.append(Tile(x, y, pixels, text, bold))
                y += th + annotation_h + GAP
            y += BLOCK_GAP - GAP
        width, height = col_x[-1] + tw + 0.05, y - BLOCK_GAP + 0.05
    return Grid(_on_pixels(width), _on_pixels(height), (tw, th), tiles, labels)


def draw_grid(grid: Grid) -> Figure:
    """A matplotlib figure of ``grid``: one unresampled image per tile, labels as text."""
    fig = Figure(figsize=(grid.width, grid.height), dpi=TILE_DPI)
    tw, th = grid.tile_size
    for tile in grid.tiles:
        ax = fig.add_axes(
            (tile.x / grid.width, 1 - (tile.y + th) / grid.height, tw / grid.width, th / grid.height)
        )
        grey = tile.pixels.ndim == 2
        ax.imshow(
            tile.pixels, cmap="gray" if grey else None, vmin=0, vmax=255, interpolation="none", aspect="auto"
        )
        ax.set_axis_off()
        if tile.caption:
            fig.text(
                (tile.x + tw / 2) / grid.width,
                1 - (tile.y + th + ANNOTATION_H / 2) / grid.height,
                tile.caption,
                ha="center",
                va="center",
                fontsize=ANNOTATION_PT,
                fontweight="bold" if tile.bold else "normal",
            )
    for x, y, text, style in grid.labels:
        fig.text(x / grid.width, 1 - y / grid.height, text, fontsize=LABEL_PT, **style)
    return fig


def tile_size(sources: PictureSources, selection: Selection, tile_height: int) -> tuple[int, int]:
    """(width, height) in pixels: ``tile_height`` and the median aspect of the shown masks."""
    aspects = [sources.aspect((group, stem)) for group, stems in selection for stem in stems]
    return max(8, int(round(tile_height * float(np.median(aspects))))), tile_height


def figure_format(out: Path) -> str:
    """``png`` or ``pdf`` from the suffix of ``out``; other suffixes are refused."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in METADATA:
        raise CosalbenchError(out, "unsupported figure format", "name the output .png or .pdf")
    return fmt


def write_gallery(
    sources: PictureSources,
    selection: Selection,
    methods: Sequence[str],
    out: str | Path,
    scores: Mapping[str, Mapping[Key, Mapping[str, float | None]]] | None = None,
    annotate: str | None = None,
    layout: str = "rows",
    tile_height: int = 128,
) -> Grid:
    """Read the tiles of ``selection``, lay them out and write the figure to ``out`` (PNG or PDF)."""
    out = Path(out)
    fmt = figure_format(out)
    size = tile_size(sources, selection, tile_height)
    tiles_of = {(g, s): sources.tiles((g, s), methods, size) for g, stems in selection for s in stems}
    grid = layout_grid(selection, methods, tiles_of, scores, annotate, layout)
    fig = draw_grid(grid)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=TILE_DPI, metadata=METADATA[fmt])
    return grid
