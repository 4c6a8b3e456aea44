"""An advisory lock per (data root, dataset): two runs writing one dataset at once are refused."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from cosalbench.errors import CosalbenchError


def lock_path(data_root: Path, dataset: str) -> Path:
    """The lock file of a dataset: ``<data-root>/manifests/.<dataset>.lock``."""
    return Path(data_root) / "manifests" / f".{dataset}.lock"


@contextlib.contextmanager
def dataset_lock(data_root: Path, dataset: str, command: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the dataset's lock file; refuse at once when another process has it.

    The lock file stays in place (removing it would let a third run lock a different inode); the
    kernel releases the lock when the process ends, however it ends.
    """
    path = lock_path(data_root, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CosalbenchError(
                path,
                f"another process is writing {dataset} into this data root",
                f"wait for it to finish, then rerun {command}",
            ) from None
        yield
    finally:
        os.close(descriptor)
