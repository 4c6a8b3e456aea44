"""Process pools for per-image work: one OpenCV and one BLAS thread per worker, safe to fork from any parent.

Interruption is the parent's business. Workers ignore Ctrl-C (SIGINT) and a SIGTERM sent to the
whole process group, so they never print tracebacks of their own; the parent, where the signal
becomes an exception, stops the pool (terminate + join) on the way out, so no worker outlives it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cv2
from threadpoolctl import threadpool_limits

# the signals that stop a run: the parent turns them into exceptions, workers leave them to it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 10.0  # seconds Pool.terminate gets before the workers are killed


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextmanager
def threads_set(get: Callable[[], int], set_threads: Callable[[int], None], count: int = 1) -> Iterator[None]:
    """Run the block with a library's thread pool at ``count`` threads (``get``/``set_threads``: its
    accessors, e.g. ``cv2.getNumThreads``/``cv2.setNumThreads``), then restore its previous size."""
    previous = get()
    set_threads(count)
    try:
        yield
    finally:
        set_threads(previous)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one OpenCV thread and one BLAS thread, as every pool worker runs, then restore
    both (a long ``np.dot`` or filter would otherwise spin threads for little gain)."""
    with threads_set(cv2.getNumThreads, cv2.setNumThreads), threadpool_limits(1):
        yield


@contextmanager
def _stop_signals_masked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread for the block (threads and processes started inside
    inherit the mask: the pool's helper threads never take a signal, workers start with them held)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: nothing to block
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block; one that arrives meanwhile is raised after it.

    Masking alone is not enough: another thread (tqdm's monitor) may take the signal, and Python
    then runs the handler in the main thread at its next check, which can be inside a fork hook,
    where the KeyboardInterrupt would be swallowed. So the Python handlers only record the signal.
    """
    received: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not None:  # None: a handler installed outside Python, left alone
                previous[sig] = signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        with _stop_signals_masked():
            yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        signal.raise_signal(received[0])


def _start_worker(stopping: Any) -> None:
    """Pool initializer: leave Ctrl-C to the parent, exit on SIGTERM only once the parent stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_sigterm(signum: int, _frame: object) -> None:
        if stopping.value:  # the parent's Pool.terminate(); a SIGTERM to the group is the parent's to handle
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    cv2.setNumThreads(1)
    threadpool_limits(1)  # BLAS too (a long np.dot would spin threads against the other workers)


def _stop(pool: multiprocessing.pool.Pool, stopping: Any) -> None:
    """Terminate and reap every worker; a second Ctrl-C meanwhile waits until they are gone.

    ``Pool.terminate`` can block for good when a worker died holding one of the pool's queue locks;
    after STOP_GRACE_S the workers are killed outright and the parent goes on without waiting.
    """
    with stop_signals_deferred():
        stopping.value = 1
        stopper = threading.Thread(target=pool.terminate, daemon=True)
        stopper.start()
        stopper.join(STOP_GRACE_S)
        if stopper.is_alive():
            for process in list(pool._pool):  # type: ignore[attr-defined]  # the pool's own worker list
                process.kill()
            stopper.join(STOP_GRACE_S)
        if not stopper.is_alive():
            pool.join()


@contextmanager
def process_pool(workers: int) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of ``workers`` processes, each with a single OpenCV thread; stopped and reaped on exit.

    On Linux the workers are forked: they start at once and need no importable ``__main__`` (scripts
    without a main guard, notebooks, stdin). Elsewhere the platform's default (spawn) is used.
    Workers ignore SIGINT and SIGTERM: an interruption is raised in the parent, which leaves the
    block, and the pool is terminated and joined whatever the way out (success, error, signal).
    """
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    stopping = context.Value("b", 0, lock=False)
    pool = None
    try:
        # a child forked while the parent's OpenCV thread pool runs inherits its locked state and can
        # hang on its first OpenCV call; forked with the pool stopped it starts with no OpenCV threads
        with stop_signals_deferred(), threads_set(cv2.getNumThreads, cv2.setNumThreads):
            pool = context.Pool(workers, initializer=_start_worker, initargs=(stopping,))
        yield pool
    finally:
        if pool is not None:
            _stop(pool, stopping)
