"""Two gloo ranks under torchrun: rank 0 prepares the synthetic set and cache behind a barrier, each rank
trains on its own share of every epoch, steps are global optimizer steps, and the run prints one summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SMOKE = Path(__file__).resolve().parents[1] / "recipes" / "rcgs-smoke.yaml"


def test_two_ranks_share_each_epoch_and_count_global_steps(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "cosalbench.cli", "train-reference", "rcgs", "--recipe", str(SMOKE), "--out", str(out),
               "--max-steps", "3", "--quiet", "size=32"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"world_size"') == 1  # one summary per run
    summary = json.loads((out / "summary.json").read_text())
    # 3 groups x 6 images in sub-groups of 3, 2 per batch: 3 batches an epoch; padded to 2 rounds of 2 ranks
    assert summary["world_size"] == 2 and summary["batches_per_epoch"] == 3
    assert summary["steps_per_epoch"] == 2 and summary["leftover_batches_per_epoch"] == 1
    assert summary["steps"] == 3 and summary["epochs_completed"] == 1
    assert summary["effective_batch"] == 12.0  # 2 ranks x 2 sub-groups x 3 images
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1, 2, 3] and log[0]["images"] == 12
    assert len(list((out / "cache").iterdir())) == 1  # built once, by rank 0
