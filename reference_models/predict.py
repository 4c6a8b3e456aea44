"""The one predictor of the reference models: checkpoint + canonical test sets in, 8-bit PNG maps out.

Each test group goes through the model whole, as the GCoNet test script does (its consensus sees every
image). A group larger than ``max_group_size`` -- or one that runs out of GPU memory, which halves the
chunk until it fits -- is predicted in chunks that share one group context: the model module's
``group_context`` is computed over the full group, then ``decode`` runs chunk by chunk. Maps are resized
back to each image's original size (bilinear, ``align_corners=True``) and stored as ``uint8(map * 255)``
(truncation, like ``ToPILImage``) at ``<out>/<method>/<Dataset>/<group>/<stem>.png``, atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from cosalbench import __version__, io, layout
from cosalbench.errors import CosalbenchError
from reference_models import recipes
from reference_models.backbones import load_torch_mapping
from reference_models.data import GroupDataset, to_tensor_batch
from reference_models.registry import load_model_module
from reference_models.train import autocast, resolve_device

EXTERNAL_BACKBONE = "external-checkpoint"


def load_checkpoint(path: str | Path, model_name: str) -> tuple[ModuleType, nn.Module, dict, str]:
    """(module, model in eval mode on the CPU, recipe, backbone provenance) from a checkpoint file.

    Accepts the trainer's ``final.pth``/``checkpoint.pth`` and bare state dicts (e.g. the official
    ``final_gconet.pth``, which then uses the model's default recipe).
    """
    path = Path(path)
    if not path.is_file():
        raise CosalbenchError(path, "checkpoint not found")
    module = load_model_module(model_name)
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
    return module, model.eval(), cfg, backbone


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


def to_original_size(maps: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Resize each map back (bilinear, align_corners=True) and convert like ToPILImage: uint8(map * 255)."""
    out = []
    for index, (height, width) in enumerate(sizes):
        resized = F.interpolate(
            maps[index : index + 1].float(), size=(height, width), mode="bilinear", align_corners=True
        )
        out.append((resized[0, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy())
    return out


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
) -> dict[str, Any]:
    """Write maps of every image of ``datasets``; returns a summary (also in ``<out>/<method>/prediction.json``).

    Groups whose maps all exist are skipped unless ``overwrite``. ``bf16`` autocasts on CUDA (fp32 otherwise).
    """
    root = layout.resolve_data_root(data_root)
    method = method or model_name
    target = resolve_device(device)
    module, model, cfg, backbone = load_checkpoint(checkpoint, model_name)
    model.to(target)
    chunk = max_group_size or (int(cfg["predict_chunk"]) if cfg.get("predict_chunk") else None)
    summary: dict[str, Any] = {
        "cosalbench": __version__,
        "model": model_name,
        "method": method,
        "checkpoint": str(checkpoint),
        "backbone": backbone,
        "device": str(target),
        "precision": "bf16" if bf16 and target.type == "cuda" else "fp32",
        "size": int(cfg["size"]),
        "datasets": {},
    }
    for name in datasets:
        dataset = GroupDataset(root, name, int(cfg["size"]), cache=False, with_masks=False)
        folder = layout.prediction_dir(Path(out), method, dataset.name)
        written = skipped = 0
        for group in tqdm(
            dataset.groups, desc=f"{method} {dataset.name}", unit="group", disable=not progress
        ):
            items = dataset.items[group]
            paths = [folder / group / f"{item.stem}.png" for item in items]
            if not overwrite and all(path.is_file() for path in paths):
                skipped += len(paths)
                continue
            images, _ = to_tensor_batch([dataset.image(group, i) for i in range(len(items))])
            with torch.no_grad(), autocast(target, "bf16" if bf16 else "none"):
                maps = predict_with_fallback(module, model, images.to(target), cfg, chunk)
            sizes = [dataset.original_size(group, i) for i in range(len(items))]
            for path, array in zip(paths, to_original_size(maps, sizes), strict=True):
                io.write_png(path, array)
            written += len(paths)
        summary["datasets"][dataset.name] = {"images": len(dataset), "written": written, "skipped": skipped}
    io.write_json(Path(out) / method / "prediction.json", summary)
    return summary


def format_table(documents: Sequence[dict]) -> str:
    """A plain-text table of the headline numbers (image mean) of each result document."""
    columns = (("maxem", "Emax"), ("sm", "S"), ("maxfm", "Fmax"), ("mae", "MAE"))
    lines = [f"{'dataset':<12} {'images':>6} " + " ".join(f"{title:>6}" for _, title in columns)]
    for document in documents:
        values = document.get("image_mean", {})
        cells = " ".join("     -" if values.get(key) is None else f"{values[key]:6.3f}" for key, _ in columns)
        lines.append(f"{document['dataset']:<12} {document['n_images']:>6} {cells}")
    return "\n".join(lines)
