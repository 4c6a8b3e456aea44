"""The shared process pool: single-threaded OpenCV in the workers, the parent's setting restored."""

from __future__ import annotations

import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest

from cosalbench.parallel import process_pool, stop_signals_deferred


def _blur_and_count_threads(seed: int) -> tuple[int, float]:
    image = np.random.default_rng(seed).random((512, 512)).astype(np.float32)
    return cv2.getNumThreads(), float(cv2.GaussianBlur(image, (0, 0), 3).sum())


def test_workers_run_opencv_single_threaded_and_parent_is_restored():
    previous = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        _blur_and_count_threads(0)  # start the parent's OpenCV thread pool before forking
        with process_pool(2) as pool:
            results = pool.map(_blur_and_count_threads, range(4))
        assert [threads for threads, _ in results] == [1, 1, 1, 1]
        assert [total for _, total in results] == [_blur_and_count_threads(s)[1] for s in range(4)]
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(previous)


def test_a_signal_taken_by_another_thread_during_the_block_is_raised_after_it():
    """Ctrl-C caught by a helper thread while the pool forks must not be lost in a fork hook."""
    finished = False
    with pytest.raises(KeyboardInterrupt), stop_signals_deferred():
        sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
        sender.start()
        sender.join()
        time.sleep(0.05)
        finished = True
    assert finished


def test_an_interrupted_pool_leaves_no_worker():
    with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
        workers = [process.pid for process in pool._pool]
        raise KeyboardInterrupt
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
