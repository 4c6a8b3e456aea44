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


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [entry["num_threads"] for entry in threadpool_info() if entry["user_api"] == "blas"]


def test_in_process_scoring_runs_single_threaded_and_restores(tmp_path, monkeypatch) -> None:
    """``workers=1`` scores in this process with one OpenCV and one BLAS thread, as each worker does."""
    from cosalbench.datasets import synth
    from cosalbench.metrics import evaluate

    spec = synth.SynthSpec(name="Tiny", n_groups=2, images_per_group=2, height=24, width=32, seed=1)
    data = synth.write_dataset(tmp_path / "data", spec)
    for sample in synth.generate(spec):
        folder = tmp_path / "preds" / "m" / "Tiny" / sample.group
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{sample.stem}.png"), sample.mask)
    seen = []
    original = evaluate.score_chunk

    def recording(*args, **kwargs):
        seen.append((cv2.getNumThreads(), _blas_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate, "score_chunk", recording)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        blas_before = _blas_threads()
        assert blas_before, "numpy's BLAS is visible to threadpoolctl"
        evaluate.evaluate_predictions(tmp_path / "preds", ["Tiny"], data_root=data, workers=1, progress=False)
        assert seen and all(opencv == 1 and all(n == 1 for n in blas) for opencv, blas in seen)
        assert cv2.getNumThreads() == 2 and _blas_threads() == blas_before
    finally:
        cv2.setNumThreads(previous)
