"""``cosalbench profile``: parameter split, FLOPs, timing fields, CLI output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from reference_models import gconet_plus  # noqa: E402
from reference_models.profile import inference_parameters, profile_model, report_columns  # noqa: E402


def own_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_gconet_plus_parameter_split_names_the_training_only_heads() -> None:
    result = profile_model("gconet_plus", "cpu", size=32, group_size=2, warmup=0, repeats=1)
    model = gconet_plus.build_model({"pretrained": False})
    unused = [model.conv_out1, model.conv_out_mask, model.pred_layer, model.classifier]
    unused += [model.co_x5.conv_output, model.co_x5.conv_transform, model.co_x5.fc_transform]
    assert result["params"] == own_parameters(model) == 18_415_048
    assert (
        result["params"] - result["params_inference"] == sum(own_parameters(m) for m in unused) == 1_527_398
    )
    assert result["flops_per_group"] > 0 and result["latency_ms"]["min"] > 0
    assert result["images_per_s"] == pytest.approx(2 / (result["latency_ms"]["median"] / 1e3))
    assert report_columns(result) == {
        "Params": 16.89,
        "FLOPs": round(result["gflops_per_image"], 2),
        "FPS": round(result["images_per_s"], 1),
    }


def test_flops_of_a_single_convolution_match_the_formula() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        conv(torch.zeros(2, 3, 16, 16))
    assert counter.get_total_flops() == 2 * 2 * 8 * 16 * 16 * 3 * 3 * 3  # 2 per multiply-add
    assert inference_parameters(conv, lambda: conv(torch.zeros(1, 3, 4, 4))) == 8 * 3 * 9 + 8


def test_flops_grow_with_the_group() -> None:
    one = profile_model("gconet", "cpu", size=32, group_size=1, warmup=0, repeats=1)["flops_per_group"]
    two = profile_model("gconet", "cpu", size=32, group_size=2, warmup=0, repeats=1)["flops_per_group"]
    assert 1.99 * one < two < 2.05 * one  # convolutions are linear in N; GAM's affinity is quadratic


def cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from cosalbench.cli import main; sys.argv = ['cosalbench', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)


def test_cli_json_and_out_file(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    args = ("profile", "rcgs", "--size", "32", "--group-size", "5", "--warmup", "0", "--repeats", "1")
    result = cli(*args, "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert (
        printed["model"] == "rcgs"
        and printed["group_size"] == 5
        and set(printed["columns"])
        == {
            "Params",
            "FLOPs",
            "FPS",
        }
    )


def test_fp16_on_the_cpu_is_refused() -> None:
    result = cli(
        "profile", "gconet", "--dtype", "fp16", "--size", "32", "--group-size", "1", "--repeats", "1"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cosalbench: error: fp16 autocast is for CUDA (use --dtype bf16 or fp32 on the CPU)"
    ]
