"""The run directory of a training: its lock, its checkpoints (written whole or not at all), its log.

* :func:`lock_run` holds ``<out>/.lock`` (an ``flock``) for the whole run, so two trainers never share one
  ``--out``; the kernel releases it when the process ends, however it ends.
* :func:`save_checkpoint` writes through a temporary name and renames it into place; a full disk or any
  other OS error while torch writes becomes one line naming the checkpoint (torch itself reports such
  failures as ``RuntimeError: enforce fail ... unexpected pos``, without the errno).
* :func:`trim_log` makes a resumed run's ``log.jsonl`` continue after the checkpoint's step, so no step
  record is written twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cosalbench import io
from cosalbench.errors import CosalbenchError, from_os_error
from cosalbench.parallel import stop_signals_deferred

LOCK = ".lock"


@contextlib.contextmanager
def lock_run(out: Path) -> Iterator[None]:
    """Hold the exclusive lock of run directory ``out`` (created when missing) for the block."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 -- held for the whole block
    except OSError as exc:
        raise from_os_error(exc, out) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CosalbenchError(
                out,
                f"another trainer is running in this folder (pid {holder})",
                "wait for it to finish or choose another --out",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _ErrnoKeepingWriter:
    """A file object for ``torch.save`` that remembers the OSError its writes raised."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += self.raw.write(view[done:])
        except OSError as exc:
            self.error = exc
            raise
        return done

    def flush(self) -> None:
        self.raw.flush()


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` ``payload`` to a temporary name beside ``path`` and rename it onto ``path``.

    On failure nothing is left under either name and the error names ``path`` in one line
    (``No space left on device`` on a full disk). Ctrl-C or SIGTERM during the save is raised once the
    checkpoint is complete: raised inside torch's writer it would surface as a failed write.
    """
    try:
        with stop_signals_deferred(), io.atomic_path(path) as tmp, open(tmp, "wb", buffering=0) as raw:
            writer = _ErrnoKeepingWriter(raw)
            try:
                torch.save(payload, writer)
            except RuntimeError as exc:
                raise _write_failure(writer.error, tmp, exc) from exc
    except OSError as exc:
        raise from_os_error(exc, path) from exc


def _write_failure(error: OSError | None, tmp: Path, exc: RuntimeError) -> OSError:
    """The OSError behind torch's RuntimeError: the one a write raised, else ENOSPC when the disk is full."""
    if error is not None:
        return error
    stats = os.statvfs(tmp.parent)
    if stats.f_bavail * stats.f_frsize < 1 << 20:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, f"torch could not write the checkpoint ({' '.join(str(exc).split())})")


def trim_log(path: Path, last_step: int) -> None:
    """Keep only the records of ``log.jsonl`` up to ``last_step`` (0: none), so a resumed run appends
    exactly the steps it trains. A missing log is fine; unreadable lines (a crash mid-write) are dropped."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= last_step:
            kept.append(line + "\n")
    io.write_text(path, "".join(kept))
