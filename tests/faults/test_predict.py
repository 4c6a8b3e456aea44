"""`predict gconet|rcgs` faults: unreadable input images, maps of another checkpoint, a full disk.

Every unreadable input is an error naming it (or, with ``--skip-unreadable``, skipped and counted);
maps of another checkpoint are never relabelled; nothing half-written is ever left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from cosalbench import io, layout  # noqa: E402
from cosalbench.datasets import synth  # noqa: E402
from tests.faults.conftest import assert_no_traceback, assert_refused, cli, snapshot  # noqa: E402
from tests.model_checkpoints import tiny_checkpoint  # noqa: E402

SPEC = synth.SynthSpec(name="Faulty", n_groups=2, images_per_group=3, height=48, width=64, seed=2)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two GCoNet checkpoints with different weights."""
    folder = tmp_path_factory.mktemp("checkpoints")
    return tiny_checkpoint(folder / "a.pth", seed=0), tiny_checkpoint(folder / "b.pth", seed=1)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return synth.write_dataset(tmp_path / "data", SPEC)


def images(root: Path) -> list[Path]:
    image_root = layout.images_dir(root, "Faulty")
    return [
        path
        for group in layout.list_groups(image_root)
        for path in layout.list_images(image_root / group).values()
    ]


def predict(checkpoint: Path, root: Path, out: Path, *extra: str):  # noqa: ANN201 -- CompletedProcess
    return cli(
        "predict", "gconet", "--checkpoint", checkpoint, "--dataset", "Faulty", "--data-root", root,
        "--out", out, "--device", "cpu", "--quiet", *extra,
    )  # fmt: skip


def no_temporaries(out: Path) -> None:
    assert not [path for path in out.rglob("*") if io.is_temp_path(path)]


def make_dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.with_name("moved-away.jpg"))


def make_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def make_empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (make_dangling, "broken symbolic link"),
        (make_folder, "is a folder"),
        (make_empty, "is empty (0 bytes)"),
    ],
)
def test_an_unreadable_image_is_refused_before_any_map_is_written(
    checkpoints: tuple[Path, Path], root: Path, tmp_path: Path, damage, problem: str
) -> None:
    victim = images(root)[-1]
    damage(victim)
    out = tmp_path / "preds"
    line = assert_refused(predict(checkpoints[0], root, out), victim, problem)
    assert "--skip-unreadable" in line
    assert snapshot(out) == {}


def test_a_corrupt_image_is_refused_naming_it(
    checkpoints: tuple[Path, Path], root: Path, tmp_path: Path
) -> None:
    victim = images(root)[0]
    victim.write_bytes(b"\xff\xd8 this is not a JPEG")
    out = tmp_path / "preds"
    assert_refused(predict(checkpoints[0], root, out), victim, "not a readable image")
    no_temporaries(out)


def test_all_images_dangling_is_an_error_not_zero_maps(
    checkpoints: tuple[Path, Path], root: Path, tmp_path: Path
) -> None:
    for path in images(root):
        make_dangling(path)
    assert_refused(predict(checkpoints[0], root, tmp_path / "preds"), "broken symbolic link")


def test_skip_unreadable_skips_and_counts(checkpoints: tuple[Path, Path], root: Path, tmp_path: Path) -> None:
    first, second, third, *_ = images(root)
    make_dangling(first)
    make_empty(second)
    third.write_bytes(b"corrupt")
    out = tmp_path / "preds"
    result = predict(checkpoints[0], root, out, "--skip-unreadable")
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "gconet Faulty: 3 of 6 maps (3 written, 0 kept, 3 unreadable skipped)" in result.stdout
    record = json.loads((out / "gconet" / "prediction.json").read_text())["datasets"]["Faulty"]
    assert (record["images"], record["maps"], record["unreadable"]) == (6, 3, 3)
    assert sorted(record["unreadable_images"]) == sorted(map(str, (first, second, third)))
    assert len(list((out / "gconet" / "Faulty").rglob("*.png"))) == 3


def test_maps_of_another_checkpoint_are_never_relabelled(
    checkpoints: tuple[Path, Path], root: Path, tmp_path: Path
) -> None:
    first, second = checkpoints
    out = tmp_path / "preds"
    done = predict(first, root, out)
    assert done.returncode == 0, done.stderr
    again = predict(first, root, out)  # same checkpoint: every group kept
    assert "6 of 6 maps (0 written, 6 kept)" in again.stdout
    before = snapshot(out)
    assert_refused(predict(second, root, out), out / "gconet" / "Faulty", str(first), "--overwrite")
    assert snapshot(out) == before
    replaced = predict(second, root, out, "--overwrite")
    assert "6 of 6 maps (6 written, 0 kept)" in replaced.stdout
    record = json.loads((out / "gconet" / "prediction.json").read_text())
    assert record["datasets"]["Faulty"]["checkpoint"] == str(second)
    assert record["datasets"]["Faulty"]["fingerprint"] == record["fingerprint"]["sha256"]
    assert snapshot(out) != before


def test_maps_of_unknown_origin_are_refused(
    checkpoints: tuple[Path, Path], root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds"
    io.write_png(layout.prediction_dir(out, "gconet", "Faulty") / "g" / "x.png", np.zeros((4, 4), np.uint8))
    assert_refused(predict(checkpoints[0], root, out), "unknown checkpoint")


def test_a_full_disk_gives_one_line_and_no_half_written_map(
    checkpoints: tuple[Path, Path], root: Path, full_disk: Path
) -> None:
    filler = full_disk / "filler"
    with open(filler, "wb") as handle:  # leave room for prediction.json and about one map
        try:
            while True:
                handle.write(b"\0" * 1024)
                handle.flush()
                if os.statvfs(full_disk).f_bavail * os.statvfs(full_disk).f_frsize <= 6 * 1024:
                    break
        except OSError:
            pass
    out = full_disk / "preds"
    line = assert_refused(predict(checkpoints[0], root, out), full_disk, "disk is full")
    assert "No space left on device" in line
    no_temporaries(full_disk)
    for path in out.rglob("*.png"):
        assert io.read_gray(path).shape == (48, 64)  # every map there is complete
