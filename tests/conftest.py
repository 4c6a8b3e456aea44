"""Shared fixtures: the ../shared folder (skipped when absent) and a small synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosalbench.datasets import synth
from cosalbench.parallel import available_cpus

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's default): one test process per CPU this run may use, at most 4 (the
    suite's own process pools and torch threads share them)."""
    return min(available_cpus(), 4)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ``../shared`` folder; tests using it skip when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent (only the project's CI and developers have it)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the default synthetic set ``Synth`` (4 groups x 6 images, 120x160)."""
    return synth.write_dataset(tmp_path_factory.mktemp("synth"))
