"""``cosalbench profile MODEL``: parameters, FLOPs, latency, images/s and peak memory of one test group.

torch loads only when the command runs (``reference_models.profile`` does the measuring).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cosalbench import io
from cosalbench.commands.zoo import model_names


def format_profile(result: dict) -> str:
    """The human-readable summary of one profile."""
    latency = result["latency_ms"]
    return "\n".join(
        [
            f"{result['model']} on {result['device']} ({result['device_name']}, {result['threads']} threads), "
            f"{result['dtype']}, group of {result['group_size']} at {result['size']}x{result['size']}",
            f"  parameters:  {result['params'] / 1e6:.3f} M ({result['params_inference'] / 1e6:.3f} M used at inference)",
            f"  FLOPs:       {result['flops_per_group'] / 1e9:.2f} G per group, {result['gflops_per_image']:.2f} G per image",
            f"  latency:     {latency['median']:.1f} ms per group (median of {result['repeats']}; mean {latency['mean']:.1f}, "
            f"min {latency['min']:.1f}; {result['warmup']} warm-up)",
            f"  throughput:  {result['images_per_s']:.1f} images/s ({result['ms_per_image']:.2f} ms per image)",
            f"  peak memory: {result['peak_memory_mib']:.0f} MiB ({result['memory_kind']})",
        ]
    )


@click.command("profile")
@click.argument("model", type=click.Choice(model_names(), case_sensitive=False))
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--size", type=int, help="Input size (default: the model's recipe size).")
@click.option("--group-size", type=int, default=16, show_default=True, help="Images per group.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--warmup", type=int, default=3, show_default=True, help="Untimed groups first.")
@click.option("--repeats", type=int, default=10, show_default=True, help="Timed groups.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the JSON to this file (atomically).")
def profile(
    model: str,
    device: str,
    size: int | None,
    group_size: int,
    dtype: str,
    warmup: int,
    repeats: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Profile reference MODEL on one random group, measured the same way for every model (FLOPs by
    torch.utils.flop_counter, CUDA events and synchronisation on GPU)."""
    from cosalbench.commands.models import _require_torch

    _require_torch()
    from reference_models.profile import profile_model, report_columns

    result = profile_model(model.lower(), device, size, group_size, dtype, warmup, repeats)
    result["columns"] = report_columns(result)
    if out:
        io.write_json(out, result)
    click.echo(json.dumps(result, indent=2) if as_json else format_profile(result))
