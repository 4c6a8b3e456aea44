"""``report --profile``: Params / FLOPs / FPS columns joined from ``cosalbench profile --json`` documents."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from cosalbench.errors import CosalbenchError
from cosalbench.metrics.profiles import load_profiles, validate_profile
from tests.faults.conftest import cli
from tests.report_provenance import HAND_WRITTEN, seeded_doc, write_profile, write_seeded
from tests.test_report_docs import table_doc, write_doc


@pytest.fixture(scope="module")
def real_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cosalbench profile rcgs --json --out`` at a tiny size (RCGS is the quickest registered model)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("profile") / "rcgs.json"
    args = ("profile", "rcgs", "--size", "32", "--group-size", "2", "--warmup", "0", "--repeats", "1")
    result = cli(*args, "--json", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """RCGS (method name 'RCGS-COCO', provenance.model 'rcgs'), GCoNet (no provenance) and cbcs."""
    root = tmp_path / "results"
    write_seeded(root, seeded_doc("RCGS-COCO", "CoCA", {"sm": 0.64}, 0, model="rcgs"))
    write_seeded(root, seeded_doc("RCGS-COCO", "CoCA", {"sm": 0.66}, 1, model="rcgs"))
    write_doc(root, table_doc("GCoNet", "CoCA", {"sm": 0.70}))
    write_doc(root, table_doc("cbcs", "CoCA", {"sm": 0.55}))
    return root


def shown(value: float, decimals: int) -> str:
    """A cost value as shown: ``decimals`` decimals, three significant digits below 1."""
    return f"{value:.{decimals}f}" if value >= 1 else f"{value:#.3g}"


def test_the_real_profile_document_passes_the_schema(real_profile: Path) -> None:
    doc = json.loads(real_profile.read_text())
    assert validate_profile(doc, real_profile) is doc
    assert set(HAND_WRITTEN) <= set(doc)  # the hand-written documents below carry the same fields
    assert load_profiles([real_profile.parent])[0]["model"] == "rcgs"


def test_columns_join_by_provenance_model_and_method_name(results: Path, real_profile: Path, tmp_path: Path):
    real = json.loads(real_profile.read_text())
    gconet = write_profile(tmp_path / "profiles", "gconet", device="cpu", device_name=real["device_name"])
    unused = write_profile(tmp_path / "profiles", "mccl", model="mccl", device="cpu", device_name=real["device_name"])  # fmt: skip
    result = cli(
        "report", results, "--metrics", "sm", "--profile", real_profile, "--profile", tmp_path / "profiles"
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line}  # fmt: skip
    assert rows["Method"][1:] == ["Params (M)", "FLOPs (G/image)", "FPS (images/s)"]
    params = shown(real["params_inference"] / 1e6, 2)
    gflops = shown(real["flops_per_group"] / real["group_size"] / 1e9, 2)
    assert rows["RCGS-COCO"][1:] == [params, gflops, shown(real["images_per_s"], 1)]  # by provenance.model
    assert rows["GCoNet"][1:] == ["16.83", "20.34", "400.0"]  # by method name, case-insensitively
    assert rows["cbcs"][1:] == ["–", "–", "–"]
    assert f"measured on cpu ({real['device_name']})" in result.stdout
    assert (
        "FLOPs: GFLOPs per image" in result.stdout and "Params: parameters used at inference" in result.stdout
    )
    assert "rcgs: fp32, groups of 2 at 32×32; gconet: fp32, groups of 16 at 224×224" in result.stdout
    assert result.stderr.strip() == (
        f"note: profile {unused} (model 'mccl') matches no row of the table (rows match by "
        "provenance.model, else by method name, case-insensitively)"
    )
    assert gconet.exists()
    page = tmp_path / "report.html"
    html = cli("report", results, "--metrics", "sm", "--profile", tmp_path / "profiles", "--out", page)
    assert html.returncode == 0, html.stderr
    assert f"note: profile {unused} (model 'mccl') matches no row" in html.stderr
    assert ">16.83</td>" in page.read_text(encoding="utf-8") and "FPS (images/s)" in page.read_text(
        encoding="utf-8"
    )
    table = cli("report", results, "--metrics", "sm", "--profile", real_profile, "--format", "csv")
    records = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [(r["method"], r["params_m"], r["images_per_s"]) for r in records] == [
        ("GCoNet", "", ""), ("cbcs", "", ""), ("RCGS-COCO", params, shown(real["images_per_s"], 1)),
    ]  # fmt: skip
    assert records[2]["profile_device"] == f"cpu ({real['device_name']})"
    latex = cli("report", results, "--metrics", "sm", "--profile", real_profile, "--format", "latex").stdout
    assert r"& Params (M) & FLOPs (G/image) & FPS (images/s) \\" in latex and r"\multicolumn{3}{c}{}" in latex


def test_profile_device_chooses_between_two_profiles_of_a_model(results: Path, tmp_path: Path):
    cpu = write_profile(
        tmp_path / "p",
        "gconet-cpu",
        device="cpu",
        device_name="x86_64",
        images_per_s=0.1404,
        latency_ms={"median": 16 / 0.1404 * 1e3},
    )
    cuda = write_profile(tmp_path / "p", "gconet-cuda")
    refused = cli("report", results, "--profile", tmp_path / "p")
    assert refused.returncode == 2 and "--profile-device" in refused.stderr
    assert str(cpu) in refused.stderr and str(cuda) in refused.stderr
    for device in ("cuda", "cuda:0", "nvidia h200"):
        chosen = cli(
            "report", results, "--metrics", "sm", "--profile", tmp_path / "p", "--profile-device", device
        )
        assert chosen.returncode == 0, chosen.stderr
        assert (
            " 400.0 |" in chosen.stdout
            and " 0.140 |" not in chosen.stdout
            and "measured on cuda:0 (NVIDIA H200)" in chosen.stdout
        )
        assert (
            f"note: profile {cpu} (gconet on cpu (x86_64)) left out: not measured on {device}"
            in chosen.stderr
        )
    on_cpu = cli("report", results, "--metrics", "sm", "--profile", tmp_path / "p", "--profile-device", "CPU")
    assert " 0.140 |" in on_cpu.stdout and "measured on cpu (x86_64)" in on_cpu.stdout  # 3 digits below 1


def test_profile_validation_names_the_file(tmp_path: Path):
    bad = write_profile(tmp_path, "bad", gflops_per_image=3.0)
    with pytest.raises(
        CosalbenchError, match="'gflops_per_image' 3.0 is not flops_per_group / group_size"
    ) as info:
        load_profiles([bad])
    assert str(bad) in str(info.value)
    for changes, message in (
        ({"images_per_s": 0}, "'images_per_s' is 0, not positive"),
        ({"params": "18M"}, "'params' has the wrong type (str)"),
        ({"params_inference": HAND_WRITTEN["params"] + 1}, "'params_inference' exceeds 'params'"),
        ({"images_per_s": float("inf")}, "'images_per_s' is inf"),
        ({"images_per_s": 200.0}, "'images_per_s' 200.0 is not group_size / median latency (400)"),
        ({"latency_ms": {"mean": 40.0}}, "'latency_ms.median' is None, not a positive number"),
    ):
        with pytest.raises(CosalbenchError, match=re.escape(message)):
            load_profiles([write_profile(tmp_path, "x", **changes)])
    partial = {k: v for k, v in HAND_WRITTEN.items() if k != "dtype"}
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    with pytest.raises(CosalbenchError, match="lacks 'dtype'"):
        load_profiles([tmp_path / "partial.json"])
