"""Cost of one test-time group through a reference model: parameters, FLOPs, latency, throughput, memory.

Measured the same way for every model: the model of the default recipe (random weights: cost does not
depend on their values) in eval mode predicts one group of ``group_size`` images of ``size`` x ``size``
through its ``predict_group``, exactly what ``cosalbench predict`` runs per group.

* Parameters: all of them, and those of the modules the eval forward actually calls ("inference"); the
  difference is the training-only heads (classifiers, GCM heads) and dead layers kept for strict loading.
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one group (a multiply-add counts 2).
* Latency: ``warmup`` untimed groups, then ``repeats`` timed ones; on CUDA each is bracketed by CUDA events
  and synchronised, on the CPU by ``time.perf_counter``. Median, mean and min are reported; images/s uses
  the median.
* Memory: peak CUDA memory allocated during the timed groups; on the CPU the process's peak RSS.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cosalbench.errors import CosalbenchError
from reference_models import recipes
from reference_models.registry import load_model_module
from reference_models.train import resolve_device

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# recipe values that normally come from the training set (prepare_config): RCGS's 78 COCO-SEG categories
TRAINING_SET_DEFAULTS: dict[str, dict[str, Any]] = {
    "rcgs": {"categories": [f"category{i}" for i in range(78)]}
}


def inference_parameters(model: nn.Module, run: Any) -> int:
    """Parameters of the modules that ``run()`` calls (each module's own, not its children's)."""
    called: set[int] = set()
    handles = [
        module.register_forward_pre_hook(lambda module, _args: called.add(id(module)))
        for module in model.modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return sum(
        p.numel()
        for module in model.modules()
        if id(module) in called
        for p in module.parameters(recurse=False)
    )


def _autocast(device: torch.device, dtype: str) -> Any:
    if DTYPES[dtype] is None:
        return nullcontext()
    if device.type == "cpu" and dtype == "fp16":
        raise CosalbenchError(None, "fp16 autocast is for CUDA", "use --dtype bf16 or fp32 on the CPU")
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_groups(run: Any, device: torch.device, repeats: int) -> list[float]:
    """Seconds per call of ``run()``, one value per repeat."""
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            seconds.append(start.elapsed_time(end) / 1000.0)
        else:
            tick = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - tick)
    return seconds


def profile_model(
    name: str,
    device: str = "cpu",
    size: int | None = None,
    group_size: int = 16,
    dtype: str = "fp32",
    warmup: int = 3,
    repeats: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile model ``name`` on one group; returns a JSON-ready dict (see the module docstring)."""
    if dtype not in DTYPES:
        raise CosalbenchError(None, f"unknown dtype {dtype!r}", f"choose one of {', '.join(DTYPES)}")
    if group_size < 1 or repeats < 1 or warmup < 0:
        raise CosalbenchError(None, "--group-size and --repeats must be >= 1, --warmup >= 0")
    module = load_model_module(name)
    cfg = {**recipes.load_recipe(module.DEFAULT_RECIPE), **TRAINING_SET_DEFAULTS.get(name, {})}
    size = int(size or cfg["size"])
    target = resolve_device(device)
    torch.manual_seed(seed)
    model = module.build_model({**cfg, "pretrained": False}).eval().to(target)
    images = torch.randn(group_size, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(target)

    def run() -> torch.Tensor:
        with torch.no_grad(), _autocast(target, dtype):
            return module.predict_group(model, images, cfg)

    used = inference_parameters(model, run)
    with FlopCounterMode(display=False) as counter:
        run()
    flops = int(counter.get_total_flops())
    for _ in range(warmup):
        run()
    _synchronize(target)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    seconds = _time_groups(run, target, repeats)
    if target.type == "cuda":
        peak_mib, memory_kind = torch.cuda.max_memory_allocated(target) / 2**20, "cuda_max_allocated"
    else:
        peak_mib, memory_kind = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "process_peak_rss",
        )
    median = statistics.median(seconds)
    return {
        "model": name,
        "device": str(target),
        "device_name": torch.cuda.get_device_name(target) if target.type == "cuda" else platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": dtype,
        "size": size,
        "group_size": group_size,
        "params": sum(p.numel() for p in model.parameters()),
        "params_inference": used,
        "flops_per_group": flops,
        "gflops_per_image": flops / group_size / 1e9,
        "warmup": warmup,
        "repeats": repeats,
        "latency_ms": {
            "median": median * 1e3,
            "mean": statistics.fmean(seconds) * 1e3,
            "min": min(seconds) * 1e3,
        },
        "ms_per_image": median * 1e3 / group_size,
        "images_per_s": group_size / median,
        "peak_memory_mib": peak_mib,
        "memory_kind": memory_kind,
    }


def report_columns(profile: dict[str, Any]) -> dict[str, float]:
    """The columns a comparison table shows: Params (M, inference), FLOPs (G per image), FPS (images/s)."""
    return {
        "Params": round(profile["params_inference"] / 1e6, 2),
        "FLOPs": round(profile["gflops_per_image"], 2),
        "FPS": round(profile["images_per_s"], 1),
    }
