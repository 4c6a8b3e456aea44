"""Faults of the training data path: a training run whose batches come from loader worker processes,
stopped by Ctrl-C or SIGTERM, ends with one line and exit 130/143 and leaves no worker behind."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults.conftest import interrupt_after
from tests.faults.test_interrupt import (
    alive,
    assert_interrupted,
    assert_nothing_half_written,
    wait_for_children,
)

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "gconet-smoke.yaml"


@pytest.mark.parametrize(("sig", "status", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])  # fmt: skip
def test_training_with_loader_workers_stops_cleanly(tmp_path: Path, sig: int, status: int, word: str) -> None:
    pytest.importorskip("torch")
    run = tmp_path / "run"
    started: list[int] = []
    result = interrupt_after(
        [
            "train-reference",
            "gconet",
            "--recipe",
            SMOKE,
            "--out",
            run,
            "--max-steps",
            "500",
            "loader_workers=2",
            "prefetch=1",
            "epochs=null",
        ],  # fmt: skip
        "| 2/500",  # two steps done: the epoch's two worker processes are running
        sig,
        timeout=240,
        before_signal=lambda pid: started.extend(wait_for_children(pid, 2)),
    )
    assert_interrupted(result, status, word)
    assert len(started) == 2, started  # the signal came while the workers ran
    assert not [pid for pid in started if alive(pid)]
    assert_nothing_half_written(run)
    assert not (run / "final.pth").exists()
