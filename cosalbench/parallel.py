"""Process pools for per-image work: one OpenCV thread per worker, safe to fork from any parent."""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import cv2


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """Run the block with OpenCV's thread pool stopped, then restore its previous size.

    A child forked while the parent's OpenCV thread pool runs inherits its locked state and can hang
    on its first OpenCV call; forked inside this block it starts with no OpenCV threads.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@contextmanager
def process_pool(workers: int) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of ``workers`` processes, each with a single OpenCV thread; terminated on exit.

    On Linux the workers are forked: they start at once and need no importable ``__main__`` (scripts
    without a main guard, notebooks, stdin). Elsewhere the platform's default (spawn) is used.
    """
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    with _single_threaded_opencv():
        pool = context.Pool(workers, initializer=cv2.setNumThreads, initargs=(1,))
    with pool:
        yield pool
