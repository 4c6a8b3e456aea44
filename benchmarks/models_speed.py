"""Speed of the reference models: inference images/s for one test group and time per training step.

Usage:
    python benchmarks/models_speed.py                 # CUDA when available: 224^2, paper batches
    python benchmarks/models_speed.py --device cpu --quick

* Inference: ``predict_group`` on one group of ``--group-size`` images (16) at ``--size`` (224), fp32 and,
  on CUDA, bf16 autocast; images/s = group size / median time.
* Training: one optimiser step (forward, loss, backward, Adam) on the first batch the model's own
  ``make_batches`` draws from a synthetic set sized for its paper batch: GCoNet 2 groups x 16 images,
  RCGS 56 sub-groups x 5 images (280). ``--quick`` shrinks the image size to 128 and the synthetic set
  so the batches are GCoNet 2 x 4 and RCGS 4 x 5 (CPU smoke figures, not comparable with the paper's).

Models come from the registry; RCGS is measured when ``reference_models.rcgs`` imports. The ratios
printed are measured in this run (bf16 vs fp32, each model vs GCoNet); the published anchors (GCoNet:
16 ms per image pair on a GTX 1080 Ti; ~408 images/s measured on an A100 at 256^2, batch 2) are shown
for context only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cosalbench.datasets import synth
from reference_models.data import GroupDataset
from reference_models.registry import MODELS, load_model_module
from reference_models.train import autocast, build_optimizer, resolve_device, resolve_recipe

# (n_groups, images_per_group) of the synthetic set whose first batch is the paper batch
PAPER_SETS = {"gconet": (2, 16), "rcgs": (8, 35)}
QUICK_SETS = {"gconet": (2, 4), "rcgs": (2, 10)}


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:  # noqa: ANN001
    """Median wall time of ``fn()`` in seconds (CUDA synchronised)."""
    times = []
    for index in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_config(name: str, size: int, dataset: GroupDataset) -> tuple[object, dict]:
    module = load_model_module(name)
    cfg = resolve_recipe(name, None, [f"size={size}", "pretrained=false"], {})
    if hasattr(module, "prepare_config"):
        cfg = module.prepare_config(cfg, dataset)
    return module, cfg


def measure(name: str, args: argparse.Namespace, device: torch.device, work: Path) -> dict:
    groups, per_group = (QUICK_SETS if args.quick else PAPER_SETS)[name]
    spec = synth.SynthSpec(name=f"Bench{name}", n_groups=groups, images_per_group=per_group,
                           height=args.size, width=args.size, seed=0)  # fmt: skip
    dataset = GroupDataset(synth.write_dataset(work, spec), spec.name, args.size)
    module, cfg = model_config(name, args.size, dataset)
    torch.manual_seed(0)
    model = module.build_model(cfg).to(device)
    result: dict = {"model": name}

    model.eval()
    images = torch.randn(args.group_size, 3, args.size, args.size, device=device)
    precisions = ["fp32"] + (["bf16"] if device.type == "cuda" else [])
    for precision in precisions:

        def infer(precision: str = precision) -> None:
            with torch.no_grad(), autocast(device, "bf16" if precision == "bf16" else "none"):
                module.predict_group(model, images, cfg)

        result[f"infer_{precision}_img_s"] = args.group_size / timed(infer, device, args.repeats)

    model.train()
    batch = next(module.make_batches(dataset, cfg, np.random.default_rng(0)))
    batch = {key: value.to(device) for key, value in batch.items()}
    optimizer = build_optimizer(model, cfg)

    def step() -> None:
        with autocast(device, cfg["amp"]):
            loss = module.training_loss(model, batch, cfg)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    result["train_batch"] = int(batch["images"].shape[0])
    result["train_step_s"] = timed(step, device, max(1, args.repeats // 2))
    result["train_img_s"] = result["train_batch"] / result["train_step_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--quick", action="store_true", help="CPU smoke figures: 128^2, group 4, small batches"
    )
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    if args.quick:
        args.size, args.group_size, args.repeats = 128, 4, 3
    device = resolve_device(args.device)
    names = []
    for name in args.models.split(","):
        try:
            load_model_module(name)
            names.append(name)
        except ImportError as exc:
            print(f"skipping {name}: {exc}")
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} size={args.size} "
          f"group={args.group_size} quick={args.quick}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            rows.append(measure(name, args, device, Path(work) / name))
    base = rows[0] if rows else None
    for row in rows:
        line = f"{row['model']:>7}: infer fp32 {row['infer_fp32_img_s']:8.2f} img/s"
        if "infer_bf16_img_s" in row:
            line += f" | bf16 {row['infer_bf16_img_s']:8.2f} img/s (x{row['infer_bf16_img_s'] / row['infer_fp32_img_s']:.2f})"
        line += f" | train step {row['train_step_s'] * 1000:9.1f} ms for {row['train_batch']} images"
        line += f" ({row['train_img_s']:.2f} img/s)"
        if base is not None and row is not base:
            line += f" | infer vs {base['model']} x{row['infer_fp32_img_s'] / base['infer_fp32_img_s']:.2f}"
        print(line)
    print("published GCoNet anchors (other hardware, context only): 16 ms per image pair (GTX 1080 Ti); "
          "~408 img/s (A100, 256^2, batch 2, CoSOD_fps_collection)")  # fmt: skip


if __name__ == "__main__":
    main()
