"""CBCS over a canonical dataset: layout, reruns, workers, bad input and the ``predict cbcs`` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cosalbench import layout
from cosalbench.baselines import cbcs
from cosalbench.cli import cli
from cosalbench.datasets import synth
from cosalbench.errors import CosalbenchError

SPEC = synth.SynthSpec(name="Tiny", n_groups=2, images_per_group=3, height=60, width=80, seed=7)


@pytest.fixture()
def tiny_root(tmp_path: Path) -> Path:
    return synth.write_dataset(tmp_path / "data", SPEC)


def _maps(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_layout_rerun_skip_and_overwrite(tiny_root: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    out = cbcs.predict_dataset(tiny_root, "Tiny", preds, progress=False)
    assert out == preds / "cbcs" / "Tiny"
    expected = {
        f"{group}/{stem}.png"
        for group in layout.list_groups(layout.images_dir(tiny_root, "Tiny"))
        for stem in layout.list_images(layout.images_dir(tiny_root, "Tiny") / group)
    }
    maps = _maps(out)
    assert set(maps) == expected and len(expected) == 6
    for name in expected:
        saved = Image.open(out / name)
        assert saved.mode == "L" and saved.size == (80, 60)
    assert (out / cbcs.PARAMS_FILE).is_file()

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    victim = sorted(stamps)[0]
    victim.unlink()
    cbcs.predict_dataset(tiny_root, "Tiny", preds, progress=False)
    assert _maps(out) == maps
    for path, stamp in stamps.items():
        if path.parent != victim.parent:
            assert path.stat().st_mtime_ns == stamp  # finished groups were skipped

    cbcs.predict_dataset(tiny_root, "Tiny", preds, method="cbcs2", workers=2, progress=False)
    assert _maps(preds / "cbcs2" / "Tiny") == maps  # workers do not change a byte

    with pytest.raises(CosalbenchError, match="seed=5489 \\(now 3\\)"):
        cbcs.predict_dataset(tiny_root, "Tiny", preds, params=cbcs.CBCSParams(seed=3), progress=False)
    cbcs.predict_dataset(
        tiny_root, "Tiny", preds, params=cbcs.CBCSParams(seed=3), overwrite=True, progress=False
    )
    assert set(_maps(out)) == expected


def test_odd_inputs_are_converted(tmp_path: Path) -> None:
    group = layout.images_dir(tmp_path, "Odd") / "things"
    group.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3)).astype(np.uint8)
    Image.fromarray(rgb).convert("P").save(group / "a.png")
    Image.fromarray(rgb[:, :, 0]).save(group / "b.jpg")
    Image.fromarray(np.dstack([rgb, np.full((40, 50), 9, np.uint8)])).save(group / "c.png")
    out = cbcs.predict_dataset(tmp_path, "Odd", tmp_path / "preds", progress=False)
    assert sorted(p.name for p in (out / "things").iterdir()) == ["a.png", "b.png", "c.png"]


def test_bad_input_names_the_path(tiny_root: Path, tmp_path: Path) -> None:
    with pytest.raises(CosalbenchError) as missing:
        cbcs.predict_dataset(tiny_root, "Nope", tmp_path / "preds", progress=False)
    assert missing.value.path == str(layout.images_dir(tiny_root, "Nope"))
    groups = layout.list_groups(layout.images_dir(tiny_root, "Tiny"))
    broken = layout.images_dir(tiny_root, "Tiny") / groups[1] / "0001.jpg"
    broken.write_bytes(b"not a jpeg")
    for workers in (1, 2):
        with pytest.raises(CosalbenchError) as corrupt:
            cbcs.predict_dataset(tiny_root, "Tiny", tmp_path / f"p{workers}", workers=workers, progress=False)
        assert corrupt.value.path == str(broken)


def test_predict_cbcs_command(tiny_root: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["predict", "cbcs", "--dataset", "Tiny", "--data-root", str(tiny_root), "--out", str(tmp_path / "p")],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p" / "cbcs" / "Tiny").rglob("*.png"))) == 6
    failed = subprocess.run(
        [sys.executable, "-m", "cosalbench.cli", "predict", "cbcs", "--dataset", "Nope"]
        + ["--data-root", str(tiny_root), "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith("cosalbench: error: ") and "Nope" in failed.stderr


def test_predict_cbcs_evaluate(tiny_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("cosalbench.metrics.evaluate")
    pytest.importorskip("py_sod_metrics")
    result = CliRunner().invoke(
        cli,
        ["predict", "cbcs", "--dataset", "Tiny", "--data-root", str(tiny_root), "--out", str(tmp_path / "p")]
        + ["--evaluate", "--protocol", "pysodmetrics"],
    )
    assert result.exit_code == 0, result.output
    assert "Tiny -- protocol pysodmetrics" in result.output and "maxF" in result.output
    assert (tmp_path / "p" / "cbcs" / "Tiny").is_dir()


def test_png_matches_in_memory_maps(tiny_root: Path, tmp_path: Path) -> None:
    out = cbcs.predict_dataset(tiny_root, "Tiny", tmp_path / "preds", progress=False)
    group_dir = (
        layout.images_dir(tiny_root, "Tiny") / layout.list_groups(layout.images_dir(tiny_root, "Tiny"))[0]
    )
    paths = list(layout.list_images(group_dir).values())
    images = [cv2.imread(str(p)) for p in paths]
    maps = cbcs.co_saliency(images, names=[p.name for p in paths])
    for path, saliency in zip(paths, maps, strict=True):
        written = cv2.imread(str(out / group_dir.name / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(written, cbcs.to_uint8(saliency))


def test_bad_protocol_is_refused_before_predicting(tiny_root: Path, tmp_path: Path) -> None:
    failed = subprocess.run(
        [sys.executable, "-m", "cosalbench.cli", "predict", "cbcs", "--dataset", "Tiny", "--evaluate"]
        + ["--protocol", "nope", "--data-root", str(tiny_root), "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2 and "unknown protocol 'nope'" in failed.stderr
    assert not (tmp_path / "p").exists()
