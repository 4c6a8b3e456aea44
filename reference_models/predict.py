"""The one predictor of the reference models: checkpoint + canonical test sets in, 8-bit PNG maps out.

Each test group goes through the model whole, as the GCoNet test script does (its consensus sees every
image). A group larger than ``max_group_size`` -- or one that runs out of GPU memory, which halves the
chunk until it fits -- is predicted in chunks that share one group context: the model module's
``group_context`` is computed over the full group, then ``decode`` runs chunk by chunk. Maps are resized
back to each image's original size (bilinear, ``align_corners=True``) and stored as ``uint8(map * 255)``
(truncation, like ``ToPILImage``) at ``<out>/<method>/<Dataset>/<group>/<stem>.png``, atomically.

Reruns resume: a group whose maps all exist is kept, but only when ``prediction.json`` records that the
same checkpoint made them (:func:`checkpoint_fingerprint`); maps of another checkpoint are refused
unless ``overwrite``. An unreadable input image is an error naming it, unless ``skip_unreadable``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from cosalbench import __version__, io, layout
from cosalbench.errors import CosalbenchError, from_os_error
from reference_models import provenance, recipes
from reference_models.backbones import load_torch_mapping
from reference_models.data import GroupDataset, resolve_dataset_name, to_tensor_batch
from reference_models.registry import load_model_module
from reference_models.train import RECIPE_DIGEST_EXCLUDED, autocast, resolve_device

EXTERNAL_BACKBONE = "external-checkpoint"


def load_checkpoint(path: str | Path, model_name: str) -> tuple[ModuleType, nn.Module, dict, str]:
    """(module, model in eval mode on the CPU, recipe, backbone provenance) from a checkpoint file.

    Accepts the trainer's ``final.pth``/``best.pth``/``checkpoint.pth`` and bare state dicts (e.g. the
    official ``final_gconet.pth``, which then uses the model's default recipe).
    """
    module, model, cfg, backbone, _ = load_checkpoint_payload(path, model_name)
    return module, model, cfg, backbone


def load_checkpoint_payload(
    path: str | Path, model_name: str
) -> tuple[ModuleType, nn.Module, dict, str, dict[str, Any]]:
    """:func:`load_checkpoint` and the file's payload (what its provenance record is made from)."""
    path = Path(path)
    module = load_model_module(model_name)
    if not path.is_file():  # a module's CHECKPOINT_HINT says where its released weights are
        raise CosalbenchError(path, "checkpoint not found", getattr(module, "CHECKPOINT_HINT", None))
    payload = load_torch_mapping(path, "checkpoint")
    if "model" in payload and "recipe" in payload:
        if payload.get("model_name") != model_name:
            raise CosalbenchError(path, f"is a {payload.get('model_name')!r} checkpoint, not {model_name!r}")
        cfg, state, backbone = dict(payload["recipe"]), payload["model"], str(payload.get("backbone"))
    else:
        cfg = recipes.load_recipe(module.DEFAULT_RECIPE)
        state = module.adapt_state_dict(payload) if hasattr(module, "adapt_state_dict") else payload
        backbone = EXTERNAL_BACKBONE
    model = module.build_model({**cfg, "pretrained": False})
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        details = []
        if result.missing_keys:
            details.append(f"{len(result.missing_keys)} missing keys, e.g. {result.missing_keys[0]}")
        if result.unexpected_keys:
            details.append(f"{len(result.unexpected_keys)} unexpected keys, e.g. {result.unexpected_keys[0]}")
        raise CosalbenchError(path, f"does not fit the {model_name} architecture ({'; '.join(details)})")
    return module, model.eval(), cfg, backbone, payload


def predict_images(
    module: ModuleType, model: nn.Module, images: torch.Tensor, cfg: dict, chunk: int | None
) -> torch.Tensor:
    """Maps ``[N, 1, S, S]`` of one group: whole, or ``chunk`` images at a time with a shared group context."""
    if not chunk or images.shape[0] <= chunk:
        return module.predict_group(model, images, cfg)
    if not (hasattr(module, "group_context") and hasattr(module, "decode")):
        raise CosalbenchError(None, f"{module.__name__} cannot split a group; raise --max-group-size")
    chunk_cfg = {**cfg, "predict_chunk": chunk}
    context = module.group_context(model, images, chunk_cfg)
    return torch.cat([module.decode(model, part, context, chunk_cfg) for part in images.split(chunk)])


def predict_with_fallback(
    module: ModuleType, model: nn.Module, images: torch.Tensor, cfg: dict, chunk: int | None
) -> torch.Tensor:
    """``predict_images``, halving the chunk after each CUDA out-of-memory error."""
    while True:
        try:
            return predict_images(module, model, images, cfg, chunk)
        except torch.OutOfMemoryError:
            current = chunk or images.shape[0]
            if current <= 1:
                raise
            chunk = current // 2
            torch.cuda.empty_cache()


def to_original_size(
    maps: torch.Tensor, sizes: Sequence[tuple[int, int]], logits: bool = False
) -> list[np.ndarray]:
    """Resize each map back (bilinear, align_corners=True) and convert like ToPILImage: uint8(map * 255).

    ``logits``: the maps are logits, resized first and then passed through the sigmoid (MCCL's test script).
    """
    out = []
    for index, (height, width) in enumerate(sizes):
        resized = F.interpolate(
            maps[index : index + 1].float(), size=(height, width), mode="bilinear", align_corners=True
        )
        if logits:
            resized = resized.sigmoid()
        out.append((resized[0, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy())
    return out


def checkpoint_fingerprint(path: str | Path, model_name: str, size: int, precision: str) -> dict[str, Any]:
    """What makes two predictions the same maps: the checkpoint file's bytes, the model, input size, precision.

    ``sha256`` digests the four together; ``prediction.json`` records it for every dataset.
    """
    parts = {
        "checkpoint_sha256": provenance.file_sha256(path),
        "model": model_name,
        "size": int(size),
        "precision": precision,
    }
    parts["sha256"] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return parts


def unreadable_entries(image_root: Path) -> list[tuple[Path, str]]:
    """Entries of ``image_root/<group>/`` named like images that are no readable file: dangling links,
    folders, empty files (corrupt contents are found when decoded), and dangling group links."""
    found: list[tuple[Path, str]] = []
    if not image_root.is_dir():
        return found
    for group_dir in sorted(image_root.iterdir()):
        if group_dir.is_symlink() and not group_dir.exists():
            found.append((group_dir, layout.entry_problem(group_dir) or "broken symbolic link"))
        if not group_dir.is_dir() or layout.is_system_file(group_dir):
            continue
        for path in sorted(group_dir.iterdir()):
            if path.suffix.lower() not in layout.IMAGE_EXTENSIONS or layout.is_system_file(path):
                continue
            if (problem := layout.entry_problem(path)) is not None:
                found.append((path, problem))
    return found


SKIP_HINT = "fix or remove it, or pass --skip-unreadable to skip unreadable images"


def _previous_record(path: Path) -> dict[str, Any]:
    """The existing ``prediction.json`` (empty when absent or unreadable: its maps are then of unknown origin)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def check_not_stale(
    folder: Path, previous: dict[str, Any], fingerprint: dict[str, Any], checkpoint: Path
) -> None:
    """Refuse a dataset folder holding maps that another checkpoint (or an unknown one) made."""
    if not (folder.is_dir() and any(folder.rglob("*.png"))):
        return
    recorded = previous.get("fingerprint")
    if recorded == fingerprint["sha256"]:
        return
    origin = (
        f"checkpoint {previous.get('checkpoint')} (fingerprint {str(recorded)[:12]})"
        if recorded
        else "an unknown checkpoint (prediction.json records none)"
    )
    raise CosalbenchError(
        folder,
        f"holds maps of {origin}, not of {checkpoint} (fingerprint {fingerprint['sha256'][:12]})",
        "pass --overwrite to replace them, or choose another --method",
    )


def _write(path: Path, writer: Callable[[Path, Any], None], content: Any) -> None:
    """``writer(path, content)``, an OS error (a full disk) becoming the one-line error naming ``path``."""
    try:
        writer(path, content)
    except OSError as exc:
        raise from_os_error(exc, path) from exc


def _decode_group(
    dataset: GroupDataset, group: str, indices: Sequence[int], skip_unreadable: bool, unreadable: list[str]
) -> tuple[list[int], list[np.ndarray], list[tuple[int, int]]]:
    """(indices decoded, RGB arrays, original sizes); an unreadable image is an error, or skipped and listed."""
    kept, arrays, sizes = [], [], []
    for index in indices:
        try:
            arrays.append(dataset.image(group, index))
        except CosalbenchError as exc:
            if not skip_unreadable:
                raise CosalbenchError(exc.path, exc.problem, SKIP_HINT) from exc
            unreadable.append(str(dataset.items[group][index].image_path))
            continue
        kept.append(index)
        sizes.append(dataset.original_size(group, index))
    return kept, arrays, sizes


def predict_datasets(
    checkpoint: str | Path,
    model_name: str,
    datasets: Sequence[str],
    data_root: str | Path | None,
    out: str | Path,
    method: str | None = None,
    device: str = "auto",
    max_group_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    bf16: bool = False,
    skip_unreadable: bool = False,
) -> dict[str, Any]:
    """Write maps of every image of ``datasets``; returns a summary (also in ``<out>/<method>/prediction.json``).

    Groups whose maps all exist are kept, if ``prediction.json`` says this checkpoint made them (same
    :func:`checkpoint_fingerprint`); maps of another checkpoint are refused unless ``overwrite``, which
    redoes every group. An unreadable input image (dangling link, folder, empty or corrupt file) is an
    error naming it, or with ``skip_unreadable`` skipped and counted. ``bf16`` autocasts on CUDA.
    """
    root = layout.resolve_data_root(data_root)
    method = method or model_name
    target = resolve_device(device)
    checkpoint = Path(checkpoint)
    module, model, cfg, backbone, payload = load_checkpoint_payload(checkpoint, model_name)
    model.to(target)
    chunk = max_group_size or (int(cfg["predict_chunk"]) if cfg.get("predict_chunk") else None)
    precision = "bf16" if bf16 and target.type == "cuda" else "fp32"
    fingerprint = checkpoint_fingerprint(checkpoint, model_name, int(cfg["size"]), precision)
    record = provenance.for_loaded_checkpoint(
        payload, checkpoint, fingerprint["checkpoint_sha256"], cfg, model_name, RECIPE_DIGEST_EXCLUDED
    )
    del payload  # the weights are in the model now
    record_path = Path(out) / method / "prediction.json"
    previous = _previous_record(record_path)
    names = [resolve_dataset_name(root, name) for name in datasets]
    for name in names:  # refuse stale maps and unreadable inputs before writing anything
        if not overwrite:
            entry = previous.get("datasets", {}).get(name, {})
            check_not_stale(layout.prediction_dir(Path(out), method, name), entry, fingerprint, checkpoint)
        if not skip_unreadable:
            for path, problem in unreadable_entries(layout.images_dir(root, name))[:1]:
                raise CosalbenchError(path, problem, SKIP_HINT)
    summary: dict[str, Any] = {
        "cosalbench": __version__,
        "model": model_name,
        "method": method,
        "checkpoint": str(checkpoint),
        "fingerprint": fingerprint,
        "backbone": backbone,
        "provenance": record,
        "device": str(target),
        "precision": precision,
        "size": int(cfg["size"]),
        "predicted": names,  # this run's datasets; "datasets" also keeps earlier runs' entries
        "datasets": dict(previous.get("datasets", {})) if isinstance(previous.get("datasets"), dict) else {},
    }
    run = PredictionRun(module, model, cfg, target, chunk, bf16, overwrite, skip_unreadable, progress)
    for name in names:
        run.predict_dataset(root, name, layout.prediction_dir(Path(out), method, name), summary, record_path)
    return summary


@dataclass
class PredictionRun:
    """The model and the options of one ``predict_datasets`` call."""

    module: ModuleType
    model: nn.Module
    cfg: dict
    device: torch.device
    chunk: int | None
    bf16: bool
    overwrite: bool
    skip_unreadable: bool
    progress: bool

    def predict_dataset(
        self, root: Path, name: str, folder: Path, summary: dict[str, Any], record_path: Path
    ) -> None:
        """Predict one dataset into ``folder``; ``summary["datasets"][name]`` (in ``prediction.json``)
        names its checkpoint before the first map is written and holds its counts when done."""
        bad = [str(path) for path, _ in unreadable_entries(layout.images_dir(root, name))]
        dataset = GroupDataset(root, name, int(self.cfg["size"]), cache=False, with_masks=False)
        known = {str(item.image_path) for items in dataset.items.values() for item in items}
        counts: dict[str, Any] = {
            "checkpoint": summary["checkpoint"],
            "fingerprint": summary["fingerprint"]["sha256"],
            "provenance": summary["provenance"],
            "complete": False,
            "images": len(dataset) + len([path for path in bad if path not in known]),
        }
        summary["datasets"][name] = counts
        _write(record_path, io.write_json, summary)
        written = kept = 0
        unreadable = list(bad)
        groups = tqdm(
            dataset.groups, desc=f"{folder.parent.name} {name}", unit="group", disable=not self.progress
        )
        for group in groups:
            items = dataset.items[group]
            indices = [i for i, item in enumerate(items) if str(item.image_path) not in bad]
            if not self.overwrite and all(
                (folder / group / f"{items[i].stem}.png").is_file() for i in indices
            ):
                kept += len(indices)
                continue
            indices, arrays, sizes = _decode_group(dataset, group, indices, self.skip_unreadable, unreadable)
            if indices:
                maps = self._predict(arrays)
                for index, array in zip(
                    indices,
                    to_original_size(maps, sizes, getattr(self.module, "MAP_LOGITS", False)),
                    strict=True,
                ):
                    _write(folder / group / f"{items[index].stem}.png", io.write_png, array)
                written += len(indices)
        present = sum(
            (folder / group / f"{item.stem}.png").is_file()
            for group in dataset.groups
            for item in dataset.items[group]
        )
        counts.update(maps=present, written=written, kept=kept, unreadable=len(unreadable))
        counts["unreadable_images"] = unreadable[:20]
        if present + len(unreadable) < counts["images"]:
            raise CosalbenchError(
                folder, f"only {present} maps for {counts['images']} images", "rerun to complete it"
            )
        counts["complete"] = True
        _write(record_path, io.write_json, summary)

    def _predict(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        images, _ = to_tensor_batch(arrays)
        with torch.no_grad(), autocast(self.device, "bf16" if self.bf16 else "none"):
            return predict_with_fallback(
                self.module, self.model, images.to(self.device), self.cfg, self.chunk
            )


def format_table(documents: Sequence[dict]) -> str:
    """A plain-text table of the headline numbers (image mean) of each result document."""
    columns = (("maxem", "Emax"), ("sm", "S"), ("maxfm", "Fmax"), ("mae", "MAE"))
    lines = [f"{'dataset':<12} {'images':>6} " + " ".join(f"{title:>6}" for _, title in columns)]
    for document in documents:
        values = document.get("image_mean", {})
        cells = " ".join("     -" if values.get(key) is None else f"{values[key]:6.3f}" for key, _ in columns)
        lines.append(f"{document['dataset']:<12} {document['n_images']:>6} {cells}")
    return "\n".join(lines)
