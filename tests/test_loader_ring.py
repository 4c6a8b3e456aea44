"""The loader's zero-copy handoff: worker processes gather batches into a ring of shared-memory slots.

The expected batches come from the cache's memory maps read with NumPy (not through the loader's
gather), so a wrong slot, a batch overwritten while it is held, or a flip on the wrong image fails.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

from reference_models import cache, loader  # noqa: E402
from reference_models.data import IMAGENET_MEAN, IMAGENET_STD, GroupDataset  # noqa: E402


@pytest.fixture(scope="module")
def entry(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> cache.ImageCache:
    dataset = GroupDataset(synth_root, "Synth", 32)
    return cache.open_or_build(dataset, tmp_path_factory.mktemp("cache"), workers=1, progress=False)


def varied_plans(count: int = 9, seed: int = 5) -> list[loader.BatchPlan]:
    """Batches of different sizes (1 to 7 of the 24 pairs), random flips and angles, labels per image."""
    rng = np.random.default_rng(seed)
    plans = []
    for index in range(count):
        size = 1 + (index * 3) % 7
        pairs = rng.choice(24, size, replace=False).astype(np.int64)
        flips = rng.random(size) < 0.5
        angles = rng.uniform(-90, 90, size).astype(np.float32)
        plans.append(loader.BatchPlan(pairs, np.full(size, index, np.int64), flips, angles))
    return plans


def expected(entry: cache.ImageCache, plan: loader.BatchPlan) -> tuple[np.ndarray, np.ndarray]:
    """The plan's images and masks straight from the memory maps, flagged ones mirrored by NumPy."""
    images = np.stack([entry.images[entry.image_row[pair]] for pair in plan.pairs])
    masks = np.stack([entry.masks[pair] for pair in plan.pairs])
    images[plan.flips], masks[plan.flips] = images[plan.flips][:, :, ::-1], masks[plan.flips][:, :, ::-1]
    return images, masks


def assert_batch_is(batch: dict[str, torch.Tensor], entry: cache.ImageCache, plan: loader.BatchPlan) -> None:
    images, masks = expected(entry, plan)
    assert np.array_equal(batch["images"].numpy(), images)
    assert np.array_equal(batch["masks"].numpy(), masks)
    assert np.array_equal(batch["labels"].numpy(), plan.labels)
    assert np.array_equal(batch["flipped"].numpy(), plan.flips)
    assert np.array_equal(batch["angles"].numpy(), plan.angles)


@pytest.mark.parametrize(("workers", "prefetch"), [(0, 1), (1, 1), (2, 1), (2, 3)])
def test_every_batch_is_its_plan_in_order_and_stays_intact_while_held(
    entry: cache.ImageCache, workers: int, prefetch: int
) -> None:
    plans = varied_plans()
    seen = 0
    for batch, plan in zip(loader.share_batches(entry, plans, workers, prefetch), plans, strict=True):
        time.sleep(0.03)  # the workers fill every other free slot meanwhile: never this one
        assert_batch_is(batch, entry, plan)
        seen += 1
    assert seen == len(plans)
    assert not multiprocessing.active_children()  # exhausted: the workers were stopped and joined


def test_a_batch_is_a_view_of_its_slot_until_the_next_request(entry: cache.ImageCache) -> None:
    plans = varied_plans(4)
    stream = loader.share_batches(entry, plans, workers=0, prefetch=1)  # one slot: reused at once
    first = next(stream)
    images = first["images"]
    kept = loader.device_batch(first, torch.device("cpu"))  # device_batch copies: its output is its own
    kept_images = kept["images"].clone()
    second = next(stream)
    assert second["images"].data_ptr() == images.data_ptr()  # the documented contract: recycled
    assert torch.equal(kept["images"], kept_images)
    stream.close()


def test_workers_deliver_what_the_trainer_gathers_itself(entry: cache.ImageCache) -> None:
    plans = varied_plans(7, seed=11)
    inline = [
        loader.device_batch(batch, torch.device("cpu")) for batch in loader.share_batches(entry, plans, 0, 1)
    ]
    pooled = [
        loader.device_batch(batch, torch.device("cpu")) for batch in loader.share_batches(entry, plans, 2, 2)
    ]
    for a, b in zip(inline, pooled, strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_closing_the_stream_early_stops_and_joins_the_workers(entry: cache.ImageCache) -> None:
    stream = loader.share_batches(entry, varied_plans(), workers=2, prefetch=2)
    next(stream)
    pids = [child.pid for child in multiprocessing.active_children()]
    assert len(pids) == 2
    for pid in pids:  # Ctrl-C and SIGTERM reach the whole process group: the workers leave them to us
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
    next(stream)  # still delivering
    stream.close()
    assert not multiprocessing.active_children()
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_a_failing_worker_raises_its_error_in_the_trainer(entry: cache.ImageCache) -> None:
    plans = varied_plans(5)
    broken = plans[3]._replace(pairs=np.array([0, 999], np.int64), labels=np.zeros(2, np.int64),
                               flips=np.zeros(2, bool), angles=np.zeros(2, np.float32))  # fmt: skip
    stream = loader.share_batches(entry, [*plans[:3], broken, plans[4]], workers=2, prefetch=1)
    with pytest.raises(IndexError) as caught:
        for _ in stream:
            pass
    assert "loader worker" in "".join(getattr(caught.value, "__notes__", []))
    assert not multiprocessing.active_children()


def test_a_killed_worker_is_reported_not_waited_for(entry: cache.ImageCache) -> None:
    stream = loader.share_batches(entry, varied_plans(30), workers=2, prefetch=1)
    next(stream)
    victim = multiprocessing.active_children()[0]
    os.kill(victim.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        for _ in stream:
            pass
    assert not multiprocessing.active_children()


def old_formula(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The device augmentation as whole-batch passes, in the order it had before the chunked, buffered
    one: convert, flip, resample (all images turned, or none), clamp, subtract, divide."""
    images = batch["images"].permute(0, 3, 1, 2).float()
    masks = batch["masks"][:, None].float()
    angles, flips = batch["angles"], batch["flips"]
    if bool((angles != 0).all()):
        grid = loader.rotation_grid(angles, flips, *images.shape[-2:])
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        masks = F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        images = images.clamp_(0.0, 255.0)
    else:
        images, masks = images.contiguous(), masks.contiguous()
        images[flips], masks[flips] = images[flips].flip(-1), masks[flips].flip(-1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
    return images.sub_(mean).div_(std), masks.div_(255.0)


@pytest.fixture(params=[1, 2], ids=["1 thread (chunked)", "2 threads (whole batch)"])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("rotated", [False, True])
def test_device_batch_gives_the_old_formula_bit_for_bit_with_reused_buffers(
    rotated: bool, threads: int
) -> None:
    generator = torch.Generator().manual_seed(3)
    buffers = loader.BatchBuffers()
    for count in (19, 6, 19):  # grow, shrink inside the buffers, grow back; chunks of 8 end mid-batch
        batch = {
            "images": torch.randint(0, 256, (count, 24, 24, 3), dtype=torch.uint8, generator=generator),
            "masks": torch.randint(0, 2, (count, 24, 24), dtype=torch.uint8, generator=generator) * 255,
            "labels": torch.arange(count),
            "flips": torch.rand(count, generator=generator) < 0.5,
            "angles": torch.rand(count, generator=generator) * 180 - 90 if rotated else torch.zeros(count),
        }
        images, masks = old_formula({key: value.clone() for key, value in batch.items()})
        made = loader.device_batch(batch, torch.device("cpu"), buffers)
        assert made["images"].is_contiguous() and made["masks"].is_contiguous()
        assert torch.equal(made["images"], images) and torch.equal(made["masks"], masks)
        assert torch.equal(made["labels"], batch["labels"])


ABANDONED = """
import multiprocessing, os, signal, sys
from pathlib import Path
import numpy as np
from reference_models import cache, loader
entry = cache.ImageCache.open(Path(sys.argv[1]))
plans = [loader.BatchPlan(np.arange(4) + k, np.zeros(4), np.zeros(4, bool), np.zeros(4, np.float32)) for k in range(20)]
stream = loader.share_batches(entry, plans, workers=2, prefetch=1)
next(stream)
print(" ".join(str(child.pid) for child in multiprocessing.active_children()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def gone(pid: int) -> bool:
    """Exited: no process, or a zombie left for whoever adopted it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_workers_exit_when_their_trainer_is_killed(entry: cache.ImageCache) -> None:
    result = subprocess.run([sys.executable, "-c", ABANDONED, str(entry.folder)], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)
