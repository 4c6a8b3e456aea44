"""Helpers for the fault suite: run the real CLI in a subprocess and check how it fails.

Every fault test asserts the same contract: the exit status, a single line
``cosalbench: error: <path>: ...`` on stderr naming the path, no traceback anywhere, and no
partial outputs (compare :func:`snapshot` before and after).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

ERROR_PREFIX = "cosalbench: error: "


def cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``cosalbench ARGS`` as a user would (a fresh interpreter), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "cosalbench.cli", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    """Neither stream holds a Python traceback."""
    for stream in (result.stdout, result.stderr):
        assert "Traceback (most recent call last)" not in stream, stream


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str | Path, status: int = 2) -> str:
    """The command failed with ``status`` and one error line that names each fragment; return it."""
    assert_no_traceback(result)
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, result.stderr
    others = [
        line for line in result.stderr.splitlines() if line.strip() and not line.startswith(ERROR_PREFIX)
    ]
    assert not [line for line in others if not _is_progress(line)], result.stderr
    for fragment in fragments:
        assert str(fragment) in errors[0], (fragment, errors[0])
    return errors[0]


def _is_progress(line: str) -> bool:
    """tqdm progress bars and warnings printed before the error are allowed on stderr."""
    return "it/s" in line or "s/it" in line or "%|" in line or line.startswith("cosalbench: warning: ")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), to prove a failure changed nothing."""
    if not root.exists():
        return {}
    digests: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() or path.is_symlink():
            data = path.read_bytes() if path.exists() else b"<dangling>"
            digests[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return digests


@contextlib.contextmanager
def mounted_tmpfs(mount_point: Path, options: str, what: str) -> Iterator[Path]:
    """A tmpfs mounted with ``options`` at ``mount_point`` for the block; the test is skipped where
    that cannot be done (``what`` names the fault for the skip message)."""
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip(f"{what} is simulated with a tmpfs mount, which needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a tiny tmpfs (64 KiB) that fills up at once; skipped where tmpfs cannot be mounted."""
    with mounted_tmpfs(tmp_path / "full-disk", "size=64k", "a full disk") as mount_point:
        yield mount_point


def interrupt_after(
    args: Sequence[str | Path],
    wait_for: str,
    sig: int = signal.SIGINT,
    timeout: float = 120,
    before_signal: Callable[[int], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Start ``cosalbench ARGS``, send ``sig`` once ``wait_for`` appears on stderr, collect the result.

    The process runs in its own session so the signal goes to the whole process group, as a
    terminal's Ctrl-C does. ``before_signal(pid)`` is called just before the signal is sent (to
    look at the running process, e.g. list its worker processes).
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "cosalbench.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + timeout
    seen = b""
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    while wait_for.encode() not in seen and process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            seen += os.read(process.stderr.fileno(), 65536)
        time.sleep(0.05)
    if before_signal is not None:
        before_signal(process.pid)
    with contextlib.suppress(ProcessLookupError):  # it finished first: the caller's asserts will say so
        os.killpg(process.pid, sig)
    os.set_blocking(process.stderr.fileno(), True)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(
        process.args,
        process.returncode,
        stdout.decode(errors="replace"),
        (seen + stderr).decode(errors="replace"),
    )


def fill(mount_point: Path) -> Path:
    """Write one file until the file system is full; return ``mount_point``."""
    descriptor = os.open(mount_point / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 1024):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return mount_point


@pytest.fixture
def filled_disk(full_disk: Path) -> Path:
    """The ``full_disk`` tmpfs with no byte left."""
    return fill(full_disk)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only tmpfs (permissions do not stop root); skipped where it cannot be mounted."""
    with mounted_tmpfs(tmp_path / "read-only", "ro,size=64k", "a read-only file system") as mount_point:
        yield mount_point
