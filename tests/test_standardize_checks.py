"""validate, export and the CLI exit codes of standardize; the evaluator reads the result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cosalbench import layout
from cosalbench.cli import main
from cosalbench.datasets.export import export_dataset
from cosalbench.datasets.standardize import standardize_dataset
from cosalbench.datasets.validate import validate_dataset
from cosalbench.errors import CosalbenchError
from tests.test_standardize_fakes import MAKERS, Fake, make_clean


@pytest.fixture
def clean(tmp_path: Path) -> tuple[Fake, Path]:
    fake = make_clean(tmp_path / "src")
    root = tmp_path / "data"
    standardize_dataset("Clean", fake.src, root, progress=False)
    return fake, root


def exit_code(argv: list[str]) -> int:
    """Run the CLI in-process like the console script; return its exit status."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_validate_intact_then_detects_changes(clean: tuple[Fake, Path]) -> None:
    _, root = clean
    result = validate_dataset(root, "Clean", progress=False)
    assert (result["status"], result["exit_code"], result["pairs"]) == ("complete", 0, 6)
    assert result["missing"] == result["changed"] == result["extra"] == []
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "gts/Clean/red disc/0001.png")
    (root / "images/Clean/blue square/0002.jpg").unlink()
    (root / "gts/Clean/blue square/.DS_Store").write_bytes(b"finder")
    result = validate_dataset(root, "Clean", progress=False)
    assert result["changed"] == ["gts/Clean/red disc/0001.png"]
    assert result["missing"] == ["images/Clean/blue square/0002.jpg"]
    assert result["extra"] == ["gts/Clean/blue square/.DS_Store"]
    assert (result["status"], result["exit_code"]) == ("usable with warnings", 3)
    assert exit_code(["validate", "Clean", "--data-root", str(root), "--no-progress"]) == 3


def test_validate_everything_missing_or_no_manifest(clean: tuple[Fake, Path], tmp_path: Path) -> None:
    _, root = clean
    for top in ("images", "gts"):
        for path in sorted((root / top).rglob("*.*")):
            path.unlink()
    assert validate_dataset(root, "Clean", progress=False)["exit_code"] == 2
    with pytest.raises(CosalbenchError, match="no manifest"):
        validate_dataset(tmp_path / "empty", "CoCA", progress=False)


def test_validate_carries_the_standardize_warnings(tmp_path: Path) -> None:
    fake = MAKERS["iCoseg"](tmp_path / "src")
    standardize_dataset("icoseg", fake.src, tmp_path / "data", progress=False)
    result = validate_dataset(tmp_path / "data", "ICOSEG", progress=False)
    assert result["dataset"] == "iCoseg" and result["missing"] == result["changed"] == []
    assert (result["standardize_status"], result["exit_code"]) == ("usable with warnings", 3)


def test_export_eval_co_sod(clean: tuple[Fake, Path], tmp_path: Path) -> None:
    fake, root = clean
    out = tmp_path / "eval"
    result = export_dataset(root, "Clean", "eval-co-sod", out)
    assert result["links_made"] == len(fake.pairs)
    exported = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert exported == sorted(f"gt/Clean/{g}/{s}.png" for g, s in fake.pairs)
    for group, stem in fake.pairs:
        assert os.path.samefile(
            out / "gt/Clean" / group / f"{stem}.png", root / "gts/Clean" / group / f"{stem}.png"
        )
    assert (out / "pred").is_dir() and not (out / "images").exists()
    assert export_dataset(root, "Clean", "eval-co-sod", out)["links_made"] == 0


def test_export_cosal_matlab_with_symlinks(clean: tuple[Fake, Path], tmp_path: Path) -> None:
    fake, root = clean
    out = tmp_path / "matlab"
    stale = out / "Dataset/Clean/GroundTruth/red disc/gone.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert (
        exit_code(
            [
                "export",
                "Clean",
                "--style",
                "cosal-matlab",
                "--out",
                str(out),
                "--data-root",
                str(root),
                "--link",
                "symlink",
            ]
        )
        == 0
    )
    assert not stale.exists()
    for group, stem in fake.pairs:
        image = out / "Dataset/Clean/Image" / group / f"{stem}.jpg"
        mask = out / "Dataset/Clean/GroundTruth" / group / f"{stem}.png"
        assert image.is_symlink() and mask.is_symlink()
        assert image.resolve() == (root / "images/Clean" / group / f"{stem}.jpg").resolve()
        assert mask.read_bytes() == (root / "gts/Clean" / group / f"{stem}.png").read_bytes()
    assert (out / "SalMap").is_dir()
    assert len(list(out.rglob("*.*"))) == 2 * len(fake.pairs)


def test_cli_exit_codes_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = make_clean(tmp_path / "clean")
    assert (
        exit_code(["standardize", "Clean", "--src", str(clean.src), "--data-root", str(tmp_path / "d")]) == 0
    )
    assert "status: complete (exit 0)" in capsys.readouterr().out
    coca = MAKERS["CoCA"](tmp_path / "coca")
    assert exit_code(["standardize", "CoCA", "--src", str(coca.src), "--data-root", str(tmp_path / "d")]) == 3
    out = capsys.readouterr().out
    assert "1 image(s) without a mask" in out and "status: usable with warnings (exit 3)" in out
    assert exit_code(["validate", "Clean", "--data-root", str(tmp_path / "d")]) == 0


def test_cli_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    command = [
        sys.executable,
        "-m",
        "cosalbench.cli",
        "standardize",
        "CoCA",
        "--src",
        str(tmp_path / "empty"),
    ]
    done = subprocess.run(
        [*command, "--data-root", str(tmp_path / "d")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith("cosalbench: error: ") and "no image/mask folders of CoCA" in done.stderr
    assert "Traceback" not in done.stderr


def test_evaluator_reads_the_standardized_set(clean: tuple[Fake, Path], tmp_path: Path) -> None:
    evaluate = pytest.importorskip("cosalbench.metrics.evaluate")
    fake, root = clean
    preds = tmp_path / "preds" / "perfect"
    for group, stem in fake.pairs:
        target = preds / "Clean" / group / f"{stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((layout.gts_dir(root, "Clean") / group / f"{stem}.png").read_bytes())
    (result,) = evaluate.evaluate_predictions(preds, ["Clean"], data_root=root, progress=False)
    assert (result["n_images"], result["n_groups"], result["missing_predictions"]) == (6, 2, [])
    assert result["image_mean"]["mae"] == 0.0
    assert result["image_mean"]["sm"] == pytest.approx(1.0)
