"""Ctrl-C and SIGTERM: one line, exit 130/143, no worker tracebacks, no process left, nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cosalbench import io
from cosalbench.datasets import synth
from tests.faults.conftest import assert_no_traceback, interrupt_after

# SynthSpec of a set that takes seconds to score, so the signal always lands mid-run
BUSY = synth.SynthSpec(name="Busy", n_groups=4, images_per_group=25, height=240, width=320, seed=1)
BUSY_METHODS = 12  # hard links of the GT under 12 method names: 1,200 images to score
SIGNALS = [
    pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
    pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM"),
]


@pytest.fixture(scope="module")
def busy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/`` with the Busy set and ``pred/m<i>/Busy/...`` (the GT itself) for every method."""
    root = tmp_path_factory.mktemp("busy")
    synth.write_dataset(root / "data", BUSY)
    gts = root / "data" / "gts" / BUSY.name
    for method in range(BUSY_METHODS):
        for mask in gts.rglob("*.png"):
            target = root / "pred" / f"m{method:02d}" / BUSY.name / mask.relative_to(gts)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(mask, target)
    return root


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that are still alive (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def wait_for_children(pid: int, count: int, timeout: float = 30) -> list[int]:
    """The children of ``pid`` once there are ``count`` of them (or what there is after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while len(found := children(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent counts as left behind)."""
    return Path(f"/proc/{pid}").exists()


def assert_interrupted(result: subprocess.CompletedProcess[str], status: int, word: str) -> None:
    """Exit ``status``, exactly one line ``cosalbench: <word> ...``, no traceback, nothing else."""
    assert_no_traceback(result)
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    messages = [line for line in lines if line.startswith("cosalbench: ")]
    assert messages == [f"cosalbench: {word} (finished outputs are kept; rerun to resume)"], result.stderr
    assert "KeyboardInterrupt" not in result.stderr
    assert all("it/s" in line or "img/s" in line or "%|" in line for line in lines[:-1]), result.stderr


def assert_nothing_half_written(root: Path) -> None:
    """No writer's temporary file and no staging folder anywhere under ``root``."""
    leftovers = [p for p in root.rglob("*") if io.is_temp_path(p) or ".staging-" in p.name]
    assert not leftovers, leftovers


@pytest.mark.parametrize("sig, status, word", SIGNALS)
@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_stops_cleanly(
    busy_root: Path, tmp_path: Path, sig: int, status: int, word: str, workers: int
):
    started: list[int] = []
    result = interrupt_after(
        ["evaluate", busy_root / "pred", "--dataset", BUSY.name, "--data-root", busy_root / "data"]
        + ["--out", tmp_path / "results", "--workers", str(workers)],
        "img/s]",
        sig,
        before_signal=lambda pid: started.extend(wait_for_children(pid, workers if workers > 1 else 0)),
    )
    assert_interrupted(result, status, word)
    assert len(started) == (workers if workers > 1 else 0), started  # the signal came while the pool ran
    assert not [pid for pid in started if alive(pid)]  # every worker was reaped before the parent exited
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("sig, status, word", SIGNALS)
def test_predict_cbcs_with_workers_stops_cleanly(
    synth_root: Path, tmp_path: Path, sig: int, status: int, word: str
) -> None:
    started: list[int] = []
    result = interrupt_after(
        ["predict", "cbcs", "--dataset", "Synth", "--data-root", synth_root, "--out", tmp_path / "pred"]
        + ["--workers", "2"],
        "img/s]",
        sig,
        before_signal=lambda pid: started.extend(wait_for_children(pid, 2)),
    )
    assert_interrupted(result, status, word)
    assert len(started) == 2 and not [pid for pid in started if alive(pid)]
    assert_nothing_half_written(tmp_path)


def test_interrupted_training_leaves_a_resumable_checkpoint_or_none(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    smoke = Path(__file__).resolve().parents[2] / "recipes" / "gconet-smoke.yaml"
    run = tmp_path / "run"
    result = interrupt_after(
        [
            "train-reference",
            "gconet",
            "--recipe",
            smoke,
            "--out",
            run,
            "--max-steps",
            "500",
            "checkpoint_every=1",
        ],
        "| 2/500",  # the progress bar after the second step: checkpoints written, the next being made
        signal.SIGTERM,
        timeout=240,
    )
    assert_interrupted(result, 143, "terminated")
    assert_nothing_half_written(run)
    assert not (run / "final.pth").exists()
    if (run / "checkpoint.pth").exists():
        state = torch.load(run / "checkpoint.pth", map_location="cpu", weights_only=True)
        assert state["step"] >= 1 and "model" in state
