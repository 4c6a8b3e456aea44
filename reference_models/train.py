"""The one trainer of the reference models: recipe in, checkpoints + JSON-lines log + summary out.

``train(cfg, out)`` builds the model through its module (``registry``), draws each epoch's batches with a
generator seeded by (seed, epoch), runs Adam/AdamW/SGD with a step schedule, autocasts to bf16 on CUDA,
optionally compiles the model, checkpoints atomically every epoch (and every ``checkpoint_every`` steps),
and resumes from ``<out>/checkpoint.pth`` when it exists. Under ``torchrun`` (``WORLD_SIZE`` > 1) it wraps
the model in DistributedDataParallel and deals whole batches round-robin, so a group never straddles ranks.

Run directory: ``recipe.yaml`` (resolved), ``log.jsonl``, ``checkpoint.pth``, ``final.pth``, ``summary.json``,
and with a validation split (``reference_models.validation``) ``validation.json`` and ``best.pth``. Every
checkpoint carries a ``provenance`` record (``reference_models.provenance``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cosalbench import __version__, io
from cosalbench.datasets import synth
from cosalbench.errors import CosalbenchError
from cosalbench.layout import resolve_data_root
from reference_models import backbones, cache, loader, provenance, recipes, rundir, schema, validation
from reference_models.cache import ImageCache
from reference_models.data import GroupDataset
from reference_models.registry import load_model_module

SYNTHETIC_NAME = "SynthTrain"
# Keys that may change when a run is resumed (they do not change what is being trained).
RUN_CONTROL_KEYS = frozenset(
    {
        "max_steps",
        "epochs",
        "device",
        "checkpoint_every",
        "log_every",
        "prefetch",
        "preload_workers",
        "loader_workers",
        "cache_dir",
        "data_root",
        "backbone_weights",
        "compile",
    }
)
CHECKPOINT = "checkpoint.pth"
FINAL = "final.pth"
BEST = "best.pth"
# Left out of the recipe digest of provenance records: run control, and the seed (recorded on its own).
RECIPE_DIGEST_EXCLUDED = RUN_CONTROL_KEYS | {"seed"}


def resolve_recipe(
    model: str, recipe: str | Path | None, overrides: list[str], flags: dict[str, Any]
) -> dict:
    """Schema defaults <- recipe file (the model's default when None) <- ``key=value`` <- CLI flags.

    Every layer is validated against the schema (``reference_models.schema``): an unknown key or a bad
    value is a one-line error naming the key, the value and what it expects. ``flags`` maps recipe keys
    to CLI values (None = not given); a bad one is named by its option (``--max-steps``).
    """
    module = load_model_module(model)
    if not hasattr(module, "training_loss"):
        raise CosalbenchError(
            None,
            f"{model} is predict-only in cosalbench (its port has no training loss)",
            "see `cosalbench models` for the models that train",
        )
    keys = schema.keys_for(model, module)
    path = recipes.find_recipe(recipe or module.DEFAULT_RECIPE)
    loaded = recipes.load_recipe(path)
    if loaded.get("model") not in (None, model):
        raise CosalbenchError(path, f"this recipe is for model {loaded['model']!r}, not {model!r}")
    cfg = recipes.apply_overrides(schema.validate(loaded, keys, path), overrides, keys)
    for key, value in flags.items():
        if value is not None:
            cfg[key] = schema.coerce(value, keys[key], key, "--" + key.replace("_", "-"))
    cfg["model"] = model
    return cfg


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CosalbenchError(
                None, "--device cuda asked but torch sees no CUDA device", "use --device cpu"
            )
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if name != "cpu":
        raise CosalbenchError(None, f"unknown device {name!r}", "use cpu, cuda or cuda:N")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally make cuDNN deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def autocast(device: torch.device, amp: str) -> torch.autocast:
    """bf16 autocast on CUDA when the recipe says ``amp: bf16``; a disabled context otherwise."""
    enabled = device.type == "cuda" and str(amp).lower() == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


class Distributed:
    """World size, ranks and process group from torchrun's environment (world size 1 without it)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def start(self, device: torch.device) -> None:
        if self.world > 1 and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def barrier(self) -> None:
        """Wait for every rank (no-op without torchrun)."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def stop(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def training_set(cfg: dict, out: Path, dist: Distributed) -> GroupDataset:
    """The recipe's training set (not decoded yet).

    ``train_set: synthetic`` generates ``SynthTrain`` under ``<out>/data`` from the ``synthetic`` section:
    rank 0 writes it, the other ranks wait for it.
    """
    if str(cfg["train_set"]).lower() == "synthetic":
        if dist.main:
            synth.write_dataset(out / "data", synth.SynthSpec(name=SYNTHETIC_NAME, **cfg["synthetic"]))
        dist.barrier()
        return GroupDataset(out / "data", SYNTHETIC_NAME, int(cfg["size"]))
    return GroupDataset(resolve_data_root(cfg.get("data_root")), str(cfg["train_set"]), int(cfg["size"]))


def training_cache(
    cfg: dict, out: Path, dataset: GroupDataset, dist: Distributed, progress: bool
) -> ImageCache:
    """The decoded-image cache of ``dataset``: built by local rank 0 of each machine, opened by all.

    Synthetic sets cache under ``<out>/cache``; others under ``cache_dir`` (default
    ``$COSALBENCH_CACHE`` or ``~/.cache/cosalbench``).
    """
    if str(cfg["train_set"]).lower() == "synthetic":
        root = out / "cache"
    else:
        root = Path(cfg["cache_dir"]) if cfg.get("cache_dir") else cache.default_cache_root()
    builder = dist.local_rank == 0
    if builder:
        opened = cache.open_or_build(dataset, root, int(cfg["preload_workers"]), progress and dist.main)
    dist.barrier()
    return opened if builder else cache.open_or_build(dataset, root, may_build=False)


def check_resumable(path: Path, saved: dict, cfg: dict) -> None:
    """A checkpoint may only continue the same training: same model and the same recipe up to run-control keys."""
    if saved.get("model_name") != cfg["model"]:
        raise CosalbenchError(
            path, f"holds a {saved.get('model_name')!r} run, not {cfg['model']!r}", "use another --out"
        )
    recipe = saved.get("recipe", {})
    changed = sorted(
        k for k in set(recipe) | set(cfg) if k not in RUN_CONTROL_KEYS and recipe.get(k) != cfg.get(k)
    )
    if changed:
        raise CosalbenchError(
            path,
            f"the recipe differs from the run being resumed ({', '.join(changed)})",
            "use another --out, or --restart to start over",
        )


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    """Trainable parameters in two groups: ``backbone.*``/``features.*`` at lr x ``backbone_lr_mult``, the rest at lr."""
    lr = float(cfg["lr"])
    head, body = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (body if name.startswith(("backbone.", "features.")) else head).append(parameter)
    groups = [{"params": head, "lr": lr}]
    if body:
        groups.append({"params": body, "lr": lr * float(cfg["backbone_lr_mult"])})
    for group in groups:
        group["initial_lr"] = group["lr"]
    kind, decay = str(cfg["optimizer"]).lower(), float(cfg["weight_decay"])
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg["betas"]), weight_decay=decay)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg["betas"]), weight_decay=decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(cfg["momentum"]), weight_decay=decay)
    raise CosalbenchError(None, f"unknown optimizer {kind!r}", "use adam, adamw or sgd")


def set_learning_rate(optimizer: torch.optim.Optimizer, cfg: dict, epoch: int, step: int) -> float:
    """Step decay: lr x gamma^(floor(count / lr_step)) with count = epoch or step (``lr_step_unit``)."""
    factor = 1.0
    if cfg.get("lr_step"):
        count = epoch if cfg["lr_step_unit"] == "epoch" else step
        factor = float(cfg["lr_gamma"]) ** (count // int(cfg["lr_step"]))
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def train(
    cfg: dict,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    resume_from: str | Path | None = None,
) -> dict:
    """Train ``cfg["model"]`` into run directory ``out``; returns the summary (also in ``summary.json``).

    With ``resume``, continue from ``resume_from`` or else ``<out>/checkpoint.pth`` when it exists.
    """
    dist = Distributed()
    device = resolve_device(str(cfg["device"]), dist.local_rank)
    dist.start(device)
    try:
        return run_training(cfg, Path(out), dist, device, resume, progress, resume_from)
    finally:
        dist.stop()


def run_training(
    cfg: dict,
    out: Path,
    dist: Distributed,
    device: torch.device,
    resume: bool = True,
    progress: bool = True,
    resume_from: str | Path | None = None,
) -> dict:
    """:func:`train` in processes whose device (and process group, under torchrun) are set up already."""
    if not cfg.get("max_steps") and cfg.get("epochs") is None:
        raise CosalbenchError(None, "the recipe sets neither epochs nor max_steps", "set one, e.g. epochs=50")
    source = Path(resume_from) if resume_from else out / CHECKPOINT
    if resume_from and not source.is_file():
        raise CosalbenchError(source, "checkpoint to resume from not found")
    with rundir.lock_run(out) if dist.main else contextlib.nullcontext():
        return _train(cfg, out, dist, device, source if resume else None, progress)


def cached_batches(
    module: ModuleType,
    dataset: GroupDataset,
    cfg: dict,
    epoch: int,
    position: int,
    images: ImageCache,
    dist: Distributed,
    pin: bool,
) -> tuple[Iterator[tuple[int, dict[str, torch.Tensor]]], dict[str, int]]:
    """This rank's remaining batches of ``epoch`` from the shared cache, each with the step's global image
    count (uint8, augmented later on the device), and the epoch's shape."""
    plans = loader.epoch_plan(module, dataset, cfg, epoch)
    share = loader.rank_share(len(plans), dist.world, dist.rank, cfg["ddp_leftover"])
    mine = [plans[index] for index in share[position:]]  # resume inside an epoch: skip the steps done
    raw = loader.share_batches(images, mine, int(cfg["loader_workers"]), int(cfg["prefetch"]), pin)
    counted = (
        (loader.round_images(plans, dist.world, position + done), batch) for done, batch in enumerate(raw)
    )
    return counted, {"batches_per_epoch": len(plans), "steps_per_epoch": len(share)}


def own_batches(
    module: ModuleType, dataset: GroupDataset, cfg: dict, epoch: int, position: int, device: torch.device
) -> tuple[Iterator[tuple[int, dict[str, torch.Tensor]]], dict[str, int]]:
    """The remaining batches of ``epoch`` from the model's own ``make_batches`` (one process, built on the
    fly, augmented by the model), on ``device``; the epoch's shape is not known ahead."""
    rng = np.random.default_rng([int(cfg["seed"]), epoch])
    batches = itertools.islice(module.make_batches(dataset, cfg, rng), position, None)
    moved = (
        (
            sum(int(value.shape[0]) for key, value in batch.items() if key.endswith("images")),
            {key: value.to(device) for key, value in batch.items()},
        )
        for batch in batches
    )
    return moved, {}


def _train(
    cfg: dict, out: Path, dist: Distributed, device: torch.device, source: Path | None, progress: bool
) -> dict:
    module = load_model_module(cfg["model"])
    state = (
        backbones.load_torch_mapping(source, "checkpoint")
        if source is not None and source.is_file()
        else None
    )
    seed_everything(int(cfg["seed"]), bool(cfg["deterministic"]))
    dataset, validator = validation.hold_out(cfg, training_set(cfg, out, dist), out, dist.main)
    if hasattr(module, "prepare_config"):
        try:
            cfg = module.prepare_config(cfg, dataset)
        except ValueError as exc:
            raise CosalbenchError(dataset.data_root, str(exc)) from exc
    model = module.build_model(cfg).to(device)  # fails fast on missing backbone weights
    own = not hasattr(module, "plan_batches")
    if own and dist.world > 1:
        raise CosalbenchError(
            None,
            f"{cfg['model']} builds its own batches and trains in one process",
            "run it without torchrun",
        )
    images = None if own else training_cache(cfg, out, dataset, dist, progress)
    backbone = backbones.backbone_init(model)
    optimizer = build_optimizer(model, cfg)
    epoch, position, step = 0, 0, 0
    checkpoint_path = out / CHECKPOINT
    if state is not None:
        check_resumable(source, state, cfg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        epoch, position, step = state["epoch"], state["position"], state["step"]
        backbone = state["backbone"]
    meta = {"cosalbench": __version__, "model_name": cfg["model"], "backbone": backbone, "recipe": cfg}
    run_record = run_provenance(cfg, model, state) if dist.main else {}
    scores = dict(state.get("validation_scores") or {}) if state is not None else {}  # best and last
    validated_at = -1
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        rundir.trim_log(out / "log.jsonl", step)
        if state is None:  # a fresh start: an earlier run's best weights are not this run's
            (out / BEST).unlink(missing_ok=True)
        recipes.save_recipe(out / "recipe.yaml", {**cfg, "backbone": backbone})
    if device.type == "cpu" and cfg["compile"]:
        cfg = {**cfg, "compile": False}  # torch.compile only pays off (and is only tested) on CUDA
    runner: nn.Module = model
    if cfg["compile"]:
        runner = torch.compile(runner)
    if dist.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        runner = nn.parallel.DistributedDataParallel(runner, device_ids=ids, find_unused_parameters=True)

    def checkpoint(next_epoch: int, next_position: int) -> None:
        if dist.main:
            payload = {**meta, "epoch": next_epoch, "position": next_position, "step": step}
            payload.update(
                model=model.state_dict(), optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state()
            )
            payload.update(
                validation_scores=scores,
                provenance=provenance.for_checkpoint(run_record, step, provenance.RESUME_RULE, CHECKPOINT),
            )
            rundir.save_checkpoint(checkpoint_path, payload)

    def validate() -> None:
        """Score the held-out groups (main process), log it, keep ``best.pth``; the other ranks wait."""
        nonlocal validated_at
        validated_at = step
        if dist.main:
            result = validator.evaluate(module, model, cfg, device)
            improved = validator.improves(result["value"], scores.get("best"))
            scores["last"] = {"step": step, "value": result["value"]}
            if improved:
                scores["best"] = scores["last"]
                record = provenance.for_checkpoint(run_record, step, validator.rule, BEST)
                weights = {"step": step, "model": model.state_dict(), "provenance": record}
                rundir.save_checkpoint(out / BEST, {**meta, **weights, "validation": result})
            log.write(
                json.dumps({"step": step, "epoch": epoch, "validation": result, "best": improved}) + "\n"
            )
            log.flush()
        dist.barrier()

    max_steps = int(cfg["max_steps"]) if cfg.get("max_steps") else None
    every = int(cfg["checkpoint_every"]) if cfg.get("checkpoint_every") else None
    epochs = int(cfg["epochs"]) if cfg.get("epochs") is not None else None
    losses: list[float] = []
    images_seen, started = 0, time.perf_counter()
    pin = device.type == "cuda"
    buffers = loader.BatchBuffers()  # each step's batch overwrites the previous one's tensors
    epoch_shape: dict[str, int] = {}
    bar = tqdm(
        total=max_steps,
        initial=step,
        desc=f"train {cfg['model']}",
        unit="step",
        disable=not (progress and dist.main),
    )
    log = open(out / "log.jsonl", "a", encoding="utf-8") if dist.main else None  # noqa: SIM115
    stream = None
    model.train()
    try:
        while (epochs is None or epoch < epochs) and (max_steps is None or step < max_steps):
            if images is None:  # the model builds its own batches (GCoNet+'s joint two-set steps)
                stream, epoch_shape = own_batches(module, dataset, cfg, epoch, position, device)
            else:
                stream, epoch_shape = cached_batches(module, dataset, cfg, epoch, position, images, dist, pin)
            for count, batch in stream:
                position += 1
                lr = set_learning_rate(optimizer, cfg, epoch, step)
                tick = time.perf_counter()
                batch = loader.device_batch(batch, device, buffers) if images is not None else batch
                with autocast(device, cfg["amp"]):
                    parts = module.training_loss(runner, batch, cfg)
                loss = parts["loss"]
                if not torch.isfinite(loss):
                    raise RuntimeError(f"non-finite loss at step {step}: {float(loss)}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.get("grad_clip"):
                    nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - tick
                step += 1
                images_seen += count
                losses.append(float(loss.detach()))
                if log is not None and step % int(cfg["log_every"]) == 0:
                    record = {
                        "step": step,
                        "epoch": epoch,
                        "lr": lr,
                        **{k: float(v.detach()) for k, v in parts.items()},
                    }
                    record.update(
                        backbone=backbone,
                        images=count,
                        images_per_s=round(count / seconds, 2),
                        time=round(time.time(), 3),
                    )
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4g}", epoch=epoch)
                last = max_steps is not None and step >= max_steps
                if validator is not None and ((validator.every and step % validator.every == 0) or last):
                    validate()
                if every and step % every == 0:
                    checkpoint(epoch, position)
                if last:
                    break
            else:
                epoch, position = epoch + 1, 0
                if (
                    validator is not None
                    and validated_at != step
                    and (not validator.every or epoch == epochs)
                ):
                    validate()
                checkpoint(epoch, position)
                continue
            checkpoint(epoch, position)  # stopped by max_steps inside an epoch
    finally:
        if stream is not None:  # stops and waits for this epoch's loader workers now, however we stop
            stream.close()
        bar.close()
        if log is not None:
            log.close()
    elapsed = time.perf_counter() - started
    head = losses[: max(1, len(losses) // 4)]
    tail = losses[-max(1, len(losses) // 4) :]
    summary = {
        "model": cfg["model"],
        "backbone": backbone,
        "device": str(device),
        "world_size": dist.world,
        "steps": step,
        "step_unit": "global optimizer step (one batch on every rank)",
        "ddp_leftover": cfg["ddp_leftover"],
        **epoch_shape,
        "leftover_batches_per_epoch": epoch_shape.get("batches_per_epoch", 0) % dist.world,
        "effective_batch": round(images_seen / len(losses), 2) if losses else None,
        "epochs_completed": epoch,
        "steps_this_run": len(losses),
        "seconds": round(elapsed, 2),
        "images_per_s": round(images_seen / elapsed, 2) if elapsed > 0 else None,
        "loss_first_quarter": float(np.mean(head)) if losses else None,
        "loss_last_quarter": float(np.mean(tail)) if losses else None,
        "final": str(out / FINAL),
    }
    if dist.main:
        rule = "last step" if validator is not None else "last step (validation off)"
        record = provenance.for_checkpoint(run_record, step, rule, FINAL)
        rundir.save_checkpoint(
            out / FINAL,
            {**meta, "recipe": cfg, "step": step, "model": model.state_dict(), "provenance": record},
        )
        summary["provenance"] = {
            **record,
            "checkpoint": provenance.file_record(FINAL, provenance.file_sha256(out / FINAL)),
        }
        summary["validation"] = validation_summary(validator, scores, out / BEST)
        io.write_json(out / "summary.json", summary)
    return summary


def run_provenance(cfg: dict, model: nn.Module, state: dict | None) -> dict[str, Any]:
    """The provenance every checkpoint of this run shares; a resumed run keeps its backbone file's record
    (the backbone's weights come from the checkpoint, whatever file the resume found)."""
    saved = state.get("provenance") if state is not None else None
    weights = (
        saved["backbone_weights"] if isinstance(saved, dict) else provenance.backbone_weights(model, cfg)
    )
    return provenance.run_provenance(cfg, RECIPE_DIGEST_EXCLUDED, weights)


def validation_summary(validator: validation.Validator | None, scores: dict, best_path: Path) -> dict | None:
    """The summary's ``validation`` entry: the rule, the best step and value, the final weights' value."""
    if validator is None:
        return None
    best, last = scores.get("best"), scores.get("last")
    return {
        "rule": validator.rule,
        "metric": validator.spec["metric"],
        "groups": len(validator.images),
        "images": validator.n_images,
        "best_step": best["step"] if best else None,
        "best_value": best["value"] if best else None,
        "final_step": last["step"] if last else None,
        "final_value": last["value"] if last else None,
        "best": str(best_path) if best else None,
    }
