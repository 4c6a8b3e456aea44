"""Where the pictures behind result documents are: per-image scores, images, GT masks and maps.

A result document (written by ``cosalbench evaluate``) names its per-image CSV (``images_csv``, next
to the JSON) but not where the images and maps came from, so the data root and the prediction
folder are passed explicitly (the same ``--data-root`` and ``PRED`` given to ``evaluate``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from cosalbench import io, layout
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.evaluate import plan_evaluation
from cosalbench.metrics.protocols import SCALAR_KEYS

Key = tuple[str, str]  # (group, stem)
PRED_ROOT_HINT = "pass --pred-root, the prediction folder given to 'cosalbench evaluate'"


def images_csv_path(doc: dict) -> Path:
    """The per-image CSV of a loaded result document (next to its JSON file)."""
    if "_path" not in doc:
        raise CosalbenchError(None, f"result {doc['method']}/{doc['dataset']} was not loaded from a file")
    return Path(doc["_path"]).parent / doc.get("images_csv", f"{doc['dataset']}.images.csv")


def _cell(text: str, path: Path, line: int) -> float | None:
    if text == "":
        return None
    try:
        return float(text)  # "NaN" parses to nan
    except ValueError:
        raise CosalbenchError(path, f"line {line}: {text!r} is not a number") from None


def read_image_scores(doc: dict) -> dict[Key, dict[str, float | None]]:
    """``{(group, stem): {metric: value}}`` from a document's per-image CSV (None: undefined)."""
    path = images_csv_path(doc)
    if not path.is_file():
        raise CosalbenchError(
            path, "per-image scores not found", "keep the .images.csv that 'cosalbench evaluate' wrote"
        )
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if "group" not in columns or "stem" not in columns:
                raise CosalbenchError(path, "not a per-image score CSV (no group and stem columns)")
            metrics = [key for key in SCALAR_KEYS if key in columns]
            rows = {}
            for line, row in enumerate(reader, start=2):
                rows[(row["group"], row["stem"])] = {k: _cell(row[k] or "", path, line) for k in metrics}
    except UnicodeDecodeError as exc:
        raise CosalbenchError(path, "not a UTF-8 text file") from exc
    if not rows:
        raise CosalbenchError(path, "per-image score CSV holds no rows")
    return rows


def finite(value: float | None) -> bool:
    """True for a number that is neither undefined (None) nor NaN."""
    return value is not None and not math.isnan(value)


class PictureSources:
    """Image, GT and each method's map of the images of one dataset, as uint8 arrays.

    ``pred_root`` is a folder of methods (``<pred_root>/<method>/<Dataset>/<group>/<stem>.png``) or a
    single method folder, resolved exactly as ``cosalbench evaluate`` resolves its ``PRED``.
    """

    def __init__(
        self, dataset: str, methods: Sequence[str], pred_root: Path | None, data_root: Path | None
    ) -> None:
        if pred_root is None:
            raise CosalbenchError(None, "the result documents do not say where the maps are", PRED_ROOT_HINT)
        root = layout.resolve_data_root(data_root)
        plan = plan_evaluation(pred_root, [dataset], root)
        self.dataset = plan.jobs[0].dataset if plan.jobs else dataset
        self.images_dir = layout.images_dir(root, self.dataset)
        self.gts_dir = layout.gts_dir(root, self.dataset)
        self.pred_dirs: dict[str, Path] = {}
        self.maps: dict[str, dict[Key, Path]] = {}
        self.gts: dict[Key, Path] = {}
        for job in plan.jobs:
            self.pred_dirs[job.method] = job.pred_dir
            self.maps[job.method] = {(p.group, p.stem): p.pred for p in job.pairs}
            self.gts.update({(p.group, p.stem): p.gt for p in job.pairs})
        for method in methods:
            if method not in self.maps:
                raise CosalbenchError(
                    Path(pred_root) / method / dataset,
                    f"no prediction folder of method {method!r}",
                    PRED_ROOT_HINT,
                )
        self._image_files: dict[str, dict[str, Path]] = {}

    def image_path(self, key: Key) -> Path:
        """The image file of ``(group, stem)`` (any image extension)."""
        group, stem = key
        if group not in self._image_files:
            folder = self.images_dir / group
            self._image_files[group] = layout.list_images(folder) if folder.is_dir() else {}
        path = self._image_files[group].get(stem)
        if path is None:
            raise CosalbenchError(
                self.images_dir / group / f"{stem}.jpg", "image not found", "check --data-root"
            )
        return path

    def gt_path(self, key: Key) -> Path:
        """The ground-truth mask of ``(group, stem)``."""
        if key not in self.gts:
            raise CosalbenchError(self.gts_dir / key[0] / f"{key[1]}.png", "ground-truth mask not found")
        return self.gts[key]

    def map_path(self, method: str, key: Key) -> Path:
        """``method``'s prediction for ``(group, stem)``."""
        path = self.maps[method].get(key)
        if path is None:
            raise CosalbenchError(
                self.pred_dirs[method] / key[0] / f"{key[1]}.png", "prediction not found", PRED_ROOT_HINT
            )
        return path

    def tiles(self, key: Key, methods: Sequence[str], size: tuple[int, int]) -> list[np.ndarray]:
        """``[image (RGB), GT, map of each method]`` resized to ``size`` = (width, height)."""
        image = cv2.cvtColor(io.read_bgr(self.image_path(key)), cv2.COLOR_BGR2RGB)
        greys = [io.read_gray(self.gt_path(key))] + [io.read_gray(self.map_path(m, key)) for m in methods]
        return [cv2.resize(array, size, interpolation=cv2.INTER_AREA) for array in [image, *greys]]

    def aspect(self, key: Key) -> float:
        """Width / height of the GT mask of ``(group, stem)``."""
        height, width = io.read_gray(self.gt_path(key)).shape
        return width / height
