"""The demo: a synthetic co-saliency set, imperfect predictions, an evaluation and curve plots.

Everything is generated from fixed seeds, so two runs write identical files. The three simulated
methods fail in the ways real models do:

* ``blurry``  -- the right object, but soft, under-confident edges (Gaussian-blurred GT, mild noise);
* ``shifted`` -- misaligned, shrunken masks (translated by a few pixels and eroded);
* ``noisy``   -- a salient-object detector that is not co-salient: the GT mixed with responses on
  every object (distractors included, from a centre-surround colour contrast) and pixel noise.

The CBCS baseline (:mod:`cosalbench.baselines.cbcs`) is run on the images as a fourth method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cosalbench import io, layout
from cosalbench.baselines import cbcs
from cosalbench.datasets import synth
from cosalbench.figures.gallery import write_gallery
from cosalbench.figures.selection import choose
from cosalbench.figures.sources import PictureSources, read_image_scores
from cosalbench.metrics.evaluate import evaluate_predictions
from cosalbench.metrics.html_report import html_report, picture_sources
from cosalbench.metrics.plots import plot_curves
from cosalbench.metrics.results_io import collect_results
from cosalbench.staging import staged_outputs

DEMO_SPEC = synth.SynthSpec(name="Demo", n_groups=5, images_per_group=8, height=120, width=160, seed=0)


def _to_uint8(saliency: np.ndarray) -> np.ndarray:
    return np.round(np.clip(saliency, 0.0, 1.0) * 255).astype(np.uint8)


def blurry(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-blurred, under-confident GT with mild noise."""
    soft = cv2.GaussianBlur(mask.astype(np.float64) / 255, (0, 0), sigmaX=float(rng.uniform(3, 6)))
    return _to_uint8(rng.uniform(0.7, 0.95) * soft + rng.normal(0, 0.03, mask.shape))


def shifted(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GT translated by up to 10 pixels, eroded, with slightly soft edges."""
    dx, dy = (int(v) for v in rng.integers(-10, 11, size=2))
    moved = cv2.warpAffine(mask, np.float64([[1, 0, dx], [0, 1, dy]]), (mask.shape[1], mask.shape[0]))
    eroded = cv2.erode(moved, np.ones((5, 5), np.uint8), iterations=int(rng.integers(1, 3)))
    return _to_uint8(cv2.GaussianBlur(eroded.astype(np.float64) / 255, (0, 0), sigmaX=1.5))


def noisy(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GT mixed with a centre-surround contrast map (which fires on distractors too) and noise."""
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float64)
    contrast = np.linalg.norm(lab - cv2.GaussianBlur(lab, (0, 0), sigmaX=20), axis=2)
    contrast = cv2.GaussianBlur(contrast, (0, 0), sigmaX=3)
    contrast /= max(float(contrast.max()), 1e-9)
    soft = cv2.GaussianBlur(mask.astype(np.float64) / 255, (0, 0), sigmaX=2)
    return _to_uint8(0.55 * soft + 0.6 * contrast + rng.normal(0, 0.08, mask.shape))


SIMULATED: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = {
    "blurry": blurry,
    "shifted": shifted,
    "noisy": noisy,
}


def write_simulated_predictions(pred_root: Path, spec: synth.SynthSpec) -> list[str]:
    """Write every simulated method's maps as ``<pred_root>/<method>/<spec.name>/<group>/<stem>.png``."""
    samples = list(synth.generate(spec))
    for index, (method, simulate) in enumerate(SIMULATED.items()):
        rng = np.random.default_rng([spec.seed, index])
        folder = layout.prediction_dir(pred_root, method, spec.name)
        for sample in samples:
            io.write_png(
                folder / sample.group / f"{sample.stem}.png", simulate(sample.image, sample.mask, rng)
            )
    return list(SIMULATED)


@dataclass(frozen=True)
class DemoOutput:
    """Where the demo wrote things, and the result documents."""

    data_root: Path
    pred_root: Path
    results_dir: Path
    plot: Path
    documents: list[dict]
    gallery: Path
    report: Path


def run_demo(
    out: str | Path = "cosalbench-demo",
    workers: int = 1,
    progress: bool = True,
    spec: synth.SynthSpec | None = None,
) -> DemoOutput:
    """Generate the demo set (``spec``, default DEMO_SPEC) and predictions under ``out``, evaluate
    them, plot their PR and F-measure curves to ``out/curves.png``, draw the groups where the methods
    disagree most to ``out/gallery.png`` and write the browsable ``out/report.html``.

    The set, maps, results and curves are made in a staging folder beside ``out`` and moved in when
    complete: a failure there (a full disk, Ctrl-C) leaves ``out`` as it was.
    """
    out, spec = Path(out), spec or DEMO_SPEC
    with staged_outputs(out) as stage:
        work = stage.folder
        work.mkdir(parents=True, exist_ok=True)
        data_root, pred_root, results_dir = work / "data", work / "predictions", work / "results"
        synth.write_dataset(data_root, spec)
        write_simulated_predictions(pred_root, spec)
        cbcs.predict_dataset(
            data_root, spec.name, pred_root, method="cbcs", workers=workers, progress=progress
        )
        documents = evaluate_predictions(
            pred_root, [spec.name], data_root=data_root, out=results_dir, workers=workers, progress=progress
        )
        plot_curves(documents, work / "curves.png", curves=("pr", "fm"))
    # the pictures read the results as the commands see them (from their final paths, which the
    # HTML report names), so they are drawn once the rest is in place; each is written atomically
    write_pictures(collect_results([out / "results"]), out / "predictions", out / "data", out)
    return DemoOutput(
        out / "data",
        out / "predictions",
        out / "results",
        out / "curves.png",
        documents,
        out / "gallery.png",
        out / "report.html",
    )


def write_pictures(docs: list[dict], pred_root: Path, data_root: Path, out: Path) -> tuple[Path, Path]:
    """The demo's qualitative figure (3 groups x 3 images where the methods disagree most, S under
    each map) and its HTML report; returns both paths."""
    methods = [doc["method"] for doc in docs]
    scores = {doc["method"]: read_image_scores(doc) for doc in docs}
    selection = choose(scores, "sm", "disagree", n_groups=3, per_group=3)
    sources = PictureSources(docs[0]["dataset"], methods, pred_root, data_root)
    gallery = out / "gallery.png"
    write_gallery(sources, selection, methods, gallery, scores, annotate="sm", tile_height=96)
    report = out / "report.html"
    io.write_text(report, html_report(docs, sources=picture_sources(docs, pred_root, data_root)))
    return gallery, report
