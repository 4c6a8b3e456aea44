"""Procedural co-saliency groups for the demo, the tests and model smoke training.

Every group has one *common* category (a coloured shape) that appears in each of its images,
among distractor shapes of other categories on a textured background. The ground truth is the
visible region of the common object. Group names contain a space (``"red disc"``) and stems repeat
across groups, so consumers must key by (group, stem). Everything is a pure function of the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cosalbench import io, layout

SHAPES = ("disc", "square", "triangle", "star", "ring", "cross")
COLOURS = {  # BGR
    "red": (40, 40, 220),
    "green": (60, 190, 60),
    "blue": (210, 90, 30),
    "yellow": (40, 220, 230),
    "magenta": (200, 60, 200),
    "white": (235, 235, 235),
}
CATEGORIES = tuple(f"{colour} {shape}" for shape in SHAPES for colour in COLOURS)
MANIFEST_COLUMNS = ("group", "stem", "width", "height", "categories")


@dataclass(frozen=True)
class SynthSpec:
    """Size and seed of a synthetic set."""

    name: str = "Synth"
    n_groups: int = 4
    images_per_group: int = 6
    height: int = 120
    width: int = 160
    seed: int = 0
    max_distractors: int = 3


@dataclass(frozen=True)
class SynthSample:
    """One generated image with its mask and the categories visible in it."""

    group: str
    stem: str
    image: np.ndarray  # uint8 BGR (H, W, 3)
    mask: np.ndarray  # uint8 (H, W), 0/255
    categories: tuple[str, ...]


def _shape_mask(
    shape: str, height: int, width: int, centre: tuple[int, int], radius: int, angle: float
) -> np.ndarray:
    """Binary mask of one shape at ``centre`` (x, y) with size ``radius`` rotated by ``angle``."""
    canvas = np.zeros((height, width), np.uint8)
    cx, cy = centre
    if shape == "disc":
        cv2.circle(canvas, centre, radius, 1, -1)
    elif shape == "ring":
        cv2.circle(canvas, centre, radius, 1, -1)
        cv2.circle(canvas, centre, max(1, radius // 2), 0, -1)
    else:
        if shape == "square":
            corners = [(1, 1), (1, -1), (-1, -1), (-1, 1)]
            points = [(x * 0.8, y * 0.8) for x, y in corners]
        elif shape == "triangle":
            points = [(np.cos(a), np.sin(a)) for a in np.deg2rad([90, 210, 330])]
        elif shape == "star":
            points = [
                (np.cos(a) * (1.0 if k % 2 == 0 else 0.45), np.sin(a) * (1.0 if k % 2 == 0 else 0.45))
                for k, a in enumerate(np.deg2rad(np.arange(10) * 36 + 90))
            ]
        elif shape == "cross":
            t = 0.35
            points = [
                (-t, -1),
                (t, -1),
                (t, -t),
                (1, -t),
                (1, t),
                (t, t),
                (t, 1),
                (-t, 1),
                (-t, t),
                (-1, t),
                (-1, -t),
                (-t, -t),
            ]
        else:
            raise ValueError(f"unknown shape {shape!r}")
        c, s = np.cos(angle), np.sin(angle)
        poly = np.array([[cx + radius * (x * c - y * s), cy + radius * (x * s + y * c)] for x, y in points])
        cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], 1)
    return canvas.astype(bool)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth two-colour gradient with mild noise, uint8 BGR."""
    start, end = rng.integers(30, 200, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, width)[None, :, None]
    image = start[None, None, :] * (1 - ramp) + end[None, None, :] * ramp
    image = np.broadcast_to(image, (height, width, 3)) + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def render_image(
    rng: np.random.Generator, common: str, height: int, width: int, max_distractors: int
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Render one image holding ``common`` and up to ``max_distractors`` other categories."""
    image = _background(rng, height, width)
    others = [c for c in CATEGORIES if c != common]
    n_distractors = int(rng.integers(1, max_distractors + 1)) if max_distractors > 0 else 0
    distractors = [others[i] for i in rng.choice(len(others), size=n_distractors, replace=False)]
    order = [*distractors, common]
    rng.shuffle(order)
    owner = np.full((height, width), -1, np.int16)
    side = min(height, width)
    for index, category in enumerate(order):
        colour_name, shape = category.split(" ")
        scale = (0.22, 0.34) if category == common else (0.10, 0.22)
        radius = max(3, int(side * rng.uniform(*scale)))
        centre = (
            int(rng.integers(radius, width - radius + 1)),
            int(rng.integers(radius, height - radius + 1)),
        )
        region = _shape_mask(shape, height, width, centre, radius, float(rng.uniform(0, 2 * np.pi)))
        shade = np.array(COLOURS[colour_name], float) * rng.uniform(0.85, 1.0)
        noise = rng.normal(0, 8, size=(int(region.sum()), 3))
        image[region] = np.clip(shade + noise, 0, 255).astype(np.uint8)
        owner[region] = index
    visible = tuple(sorted(order[i] for i in np.unique(owner) if i >= 0))
    mask = np.where(owner == order.index(common), 255, 0).astype(np.uint8)
    return image, mask, visible


def group_categories(spec: SynthSpec) -> list[str]:
    """The common category of each group, distinct, drawn from the seed."""
    if spec.n_groups > len(CATEGORIES):
        raise ValueError(f"at most {len(CATEGORIES)} synthetic groups")
    rng = np.random.default_rng(spec.seed)
    return [CATEGORIES[i] for i in rng.permutation(len(CATEGORIES))[: spec.n_groups]]


def generate(spec: SynthSpec = SynthSpec()) -> Iterator[SynthSample]:
    """Yield every sample of the set, group by group in sorted group order."""
    for common in sorted(group_categories(spec)):
        rng = np.random.default_rng([spec.seed, CATEGORIES.index(common)])
        for index in range(spec.images_per_group):
            image, mask, visible = render_image(rng, common, spec.height, spec.width, spec.max_distractors)
            yield SynthSample(common, f"{index:04d}", image, mask, visible)


def write_dataset(data_root: str | Path, spec: SynthSpec = SynthSpec()) -> Path:
    """Write the set in the canonical layout under ``data_root`` (JPEG images, 0/255 PNG masks, manifest).

    Returns ``data_root``. Re-running with the same spec rewrites identical files.
    """
    data_root = Path(data_root)
    rows = []
    for sample in generate(spec):
        io.write_jpeg(
            layout.images_dir(data_root, spec.name) / sample.group / f"{sample.stem}.jpg", sample.image
        )
        io.write_png(layout.gts_dir(data_root, spec.name) / sample.group / f"{sample.stem}.png", sample.mask)
        height, width = sample.mask.shape
        rows.append(
            (sample.group, sample.stem, width, height, layout.CATEGORY_SEPARATOR.join(sample.categories))
        )
    io.write_csv(layout.manifest_path(data_root, spec.name), MANIFEST_COLUMNS, rows)
    return data_root
