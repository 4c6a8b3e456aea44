"""Incremental reruns: results whose input fingerprint is unchanged are reused, new methods scored alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench import io, layout
from cosalbench.cli import main
from cosalbench.datasets import synth
from cosalbench.metrics import protocols
from cosalbench.metrics.evaluate import evaluate_predictions, plan_evaluation, run_plan

SPEC = synth.SynthSpec(name="Tiny", n_groups=2, images_per_group=3, height=24, width=32, seed=2)
N_IMAGES = SPEC.n_groups * SPEC.images_per_group


def _write_method(root: Path, name: str, sigma: float) -> None:
    for sample in synth.generate(SPEC):
        pred = cv2.GaussianBlur(sample.mask, (0, 0), sigmaX=sigma)
        io.write_png(
            layout.prediction_dir(root / "preds", name, "Tiny") / sample.group / f"{sample.stem}.png", pred
        )


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path]:
    data = synth.write_dataset(tmp_path / "data", SPEC)
    for index, name in enumerate(("a", "b", "c")):
        _write_method(tmp_path, name, 1 + index)
    return tmp_path, data


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = protocols.PySODMetricsProtocol.read_pred

    def counting(self, path, shape):
        reads.append(str(path))
        return original(self, path, shape)

    monkeypatch.setattr(protocols.PySODMetricsProtocol, "read_pred", counting)
    return reads


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(root: Path, data: Path, reused: list[str] | None = None, **options) -> list[dict]:
    plan = plan_evaluation(root / "preds", ["Tiny"], data)
    return run_plan(plan, out=root / "out", progress=False, reused=reused, **options)


def test_unchanged_rerun_decodes_nothing_and_keeps_the_files(setup, monkeypatch) -> None:
    root, data = setup
    first = _run(root, data)
    before = _snapshot(root / "out")
    assert len(before) == 3 * 3  # JSON, CSV and fingerprint per method
    reads = _count_reads(monkeypatch)
    reused: list[str] = []
    again = _run(root, data, reused)
    assert reads == [] and sorted(reused) == ["a/Tiny", "b/Tiny", "c/Tiny"]
    assert again == first and _snapshot(root / "out") == before


def test_a_new_method_is_the_only_one_scored(setup, monkeypatch) -> None:
    root, data = setup
    _run(root, data)
    _write_method(root, "d", 5)
    reads = _count_reads(monkeypatch)
    reused: list[str] = []
    docs = _run(root, data, reused)
    assert len(reads) == N_IMAGES and all("/d/" in path for path in reads)
    assert sorted(reused) == ["a/Tiny", "b/Tiny", "c/Tiny"] and len(docs) == 4
    alone = evaluate_predictions(root / "preds" / "d", ["Tiny"], data_root=data, progress=False)[0]
    assert docs[-1] == alone


def test_changed_input_or_option_or_overwrite_rescores(setup, monkeypatch) -> None:
    root, data = setup
    _run(root, data)
    sample = next(iter(synth.generate(SPEC)))
    changed = layout.prediction_dir(root / "preds", "b", "Tiny") / sample.group / f"{sample.stem}.png"
    io.write_png(changed, np.zeros((SPEC.height, SPEC.width), np.uint8))
    reads = _count_reads(monkeypatch)
    reused: list[str] = []
    _run(root, data, reused)
    assert sorted(reused) == ["a/Tiny", "c/Tiny"] and len(reads) == N_IMAGES
    reads.clear()
    _run(root, data, wfm=True)  # another option: every result rescored
    assert len(reads) == 3 * N_IMAGES
    reads.clear()
    _run(root, data, wfm=True, overwrite=True)
    assert len(reads) == 3 * N_IMAGES


def test_missing_result_file_is_rescored_and_the_cli_says_what_it_reused(setup, capsys) -> None:
    root, data = setup
    args = [
        "evaluate",
        str(root / "preds"),
        "--dataset",
        "Tiny",
        "--data-root",
        str(data),
        "--out",
        str(root / "out"),
        "--workers",
        "1",
    ]
    main(args)
    (root / "out" / "a" / "Tiny.images.csv").unlink()
    shutil.rmtree(root / "out" / "c")
    capsys.readouterr()
    main(args)
    text = capsys.readouterr().out
    assert "reused 1 of 3 results" in text and "b/Tiny" in text
    assert (root / "out" / "a" / "Tiny.images.csv").is_file() and (root / "out" / "c" / "Tiny.json").is_file()
    main([*args, "--overwrite"])
    assert "reused" not in capsys.readouterr().out
