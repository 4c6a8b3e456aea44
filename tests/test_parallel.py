"""The shared process pool: single-threaded OpenCV in the workers, the parent's setting restored."""

from __future__ import annotations

import cv2
import numpy as np

from cosalbench.parallel import process_pool


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
