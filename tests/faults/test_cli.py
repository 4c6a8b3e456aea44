"""demo, datasets and the entry point itself under faults: one line naming the path, nothing half-written."""

from __future__ import annotations

import io as bytes_io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cosalbench.errors import CosalbenchError, exception_summary
from tests.faults.conftest import assert_no_traceback, assert_refused, cli, snapshot


def test_demo_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "demo").write_text("keep me")
    before = snapshot(tmp_path)
    assert_refused(cli("demo", "--out", tmp_path / "demo"), tmp_path / "demo", "not a folder")
    assert snapshot(tmp_path) == before


def test_demo_on_a_full_disk_leaves_nothing(filled_disk: Path) -> None:
    before = snapshot(filled_disk)
    line = assert_refused(cli("demo", "--out", filled_disk / "demo"), filled_disk / "demo", "No space left")
    assert ".staging-" not in line  # the error names the final file, not its staged twin
    assert snapshot(filled_disk) == before and sorted(p.name for p in filled_disk.iterdir()) == ["filler"]


def test_demo_on_a_read_only_file_system_is_named(read_only: Path) -> None:
    assert_refused(cli("demo", "--out", read_only / "demo"), read_only, "Read-only file system")


def test_datasets_data_root_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "root").write_text("")
    assert_refused(cli("datasets", "--data-root", tmp_path / "root"), tmp_path / "root")


def test_datasets_names_a_manifest_that_is_not_utf8(tmp_path: Path) -> None:
    manifest = tmp_path / "manifests" / "CoCA.csv"
    manifest.parent.mkdir()
    manifest.write_bytes(b"gro\xffup,stem\n")
    listed = cli("datasets", "--data-root", tmp_path)  # a status listing names the problem in its row
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    coca = next(line for line in listed.stdout.splitlines() if line.startswith("CoCA "))
    assert "unreadable manifest (not UTF-8 text (byte 3 of" in coca


@pytest.mark.parametrize("args", [["datasets"], ["datasets", "--json"], ["--help"]])
def test_a_closed_stdout_ends_quietly(args: list[str]) -> None:
    """``cosalbench datasets | head -1`` where head has already gone: no traceback, no message."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run(
        [sys.executable, "-m", "cosalbench.cli", *args], stdout=write_end, stderr=subprocess.PIPE, text=True
    )
    os.close(write_end)
    assert done.returncode != 0 and done.stderr == ""


def test_datasets_piped_into_head_prints_its_first_line() -> None:
    pipeline = subprocess.run(
        f"{sys.executable} -m cosalbench.cli datasets | head -1", shell=True, capture_output=True, text=True
    )
    assert pipeline.stdout.startswith("dataset") and pipeline.stderr == ""


def test_usage_errors_are_one_line() -> None:
    assert_refused(cli("report", "--no-such-option"), "--no-such-option", "cosalbench report --help")
    assert_refused(cli("no-such-command"), "no-such-command")


def test_a_multi_line_problem_is_printed_on_one_line() -> None:
    error = CosalbenchError("/data/recipe.yaml", "line one\n  line two\n", "a hint\nwith a break")
    assert str(error) == "/data/recipe.yaml: line one line two (a hint with a break)"


def test_library_errors_are_summarised_on_one_line() -> None:
    with pytest.raises(yaml.YAMLError) as yaml_error:
        yaml.safe_load("lr: 1\n epochs: [2\n")
    assert exception_summary(yaml_error.value) == "mapping values are not allowed here at line 2, column 8"
    image = pytest.importorskip("PIL.Image")
    with pytest.raises(OSError) as pil_error:
        image.open(bytes_io.BytesIO(b"not an image"))
    assert exception_summary(pil_error.value) == "cannot identify image file"  # no <_io.BytesIO object ...>


def test_a_recipe_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model: gconet\n epochs: [2\n")
    line = assert_refused(
        cli("train-reference", "gconet", "--recipe", recipe, "--out", tmp_path / "run"), recipe
    )
    assert "not valid YAML" in line and "line 2" in line
    assert not (tmp_path / "run").exists()


def test_a_corrupt_weights_file_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    weights = tmp_path / "vgg16.pth"
    weights.write_bytes(b"\x80\x02garbage" * 100)
    result = cli(
        "train-reference",
        "gconet",
        "--recipe",
        Path(__file__).resolve().parents[2] / "recipes" / "gconet-smoke.yaml",
        "--out",
        tmp_path / "run",
        "--backbone-weights",
        weights,
        "pretrained=true",
        "--max-steps",
        "1",
    )
    assert_no_traceback(result)
    line = assert_refused(result, weights, "cannot read as a torch")
    assert "object at 0x" not in line and len(line) < 300
