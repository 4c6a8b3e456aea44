"""``cosalbench gallery``: selection of groups/images, grid geometry, deterministic PNG/PDF, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench import io
from cosalbench.figures.gallery import TILE_DPI, write_gallery
from cosalbench.figures.selection import choose
from cosalbench.figures.sources import PictureSources, read_image_scores
from cosalbench.metrics.results_io import collect_results
from tests.faults.conftest import assert_refused, cli
from tests.results_tree import make_tree

METHODS = ["blurry", "noisy", "shifted"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory):
    return make_tree(tmp_path_factory.mktemp("gallery"))


def _args(tree, *extra: str) -> list[str]:
    return ["gallery", str(tree.results), "--dataset", "Mini", "--pred-root", str(tree.pred_root),
            "--data-root", str(tree.data_root), *extra]  # fmt: skip


def test_disagree_picks_the_groups_and_images_where_methods_differ_most() -> None:
    scores = {
        "a": {("g1", "x"): {"sm": 0.9}, ("g1", "y"): {"sm": 0.5}, ("g2", "x"): {"sm": 0.5}, ("g2", "y"): {"sm": 0.5}},
        "b": {("g1", "x"): {"sm": 0.1}, ("g1", "y"): {"sm": 0.5}, ("g2", "x"): {"sm": 0.6}, ("g2", "y"): {"sm": 0.5}},
    }  # fmt: skip
    assert choose(scores, "sm", "disagree", n_groups=2, per_group=2) == [
        ("g1", ["x", "y"]),
        ("g2", ["x", "y"]),
    ]
    assert choose(scores, "sm", "disagree", n_groups=1, per_group=1) == [("g1", ["x"])]
    # hardest: lowest mean S (g1: 0.5, g2: 0.525); within g1 both images have mean 0.5 -> by name
    assert choose(scores, "sm", "hardest", n_groups=1, per_group=2) == [("g1", ["x", "y"])]
    assert choose(scores, "sm", "easiest", n_groups=1, per_group=1) == [("g2", ["x"])]
    assert choose(scores, "sm", "disagree", groups=["g2"], per_group=1) == [("g2", ["x"])]


def test_hardest_follows_the_metric_direction_and_skips_undefined_images() -> None:
    scores = {
        "a": {("g", "low"): {"mae": 0.1}, ("g", "high"): {"mae": 0.4}, ("g", "nan"): {"mae": float("nan")}},
        "b": {("g", "low"): {"mae": 0.1}, ("g", "high"): {"mae": 0.5}, ("g", "nan"): {"mae": 0.9}},
    }
    assert choose(scores, "mae", "hardest", per_group=3) == [("g", ["high", "low"])]
    assert choose(scores, "mae", "easiest", per_group=1) == [("g", ["low"])]


def test_random_pick_is_seeded() -> None:
    scores = {m: {(f"g{i}", f"s{j}"): {"sm": 0.5} for i in range(6) for j in range(5)} for m in "ab"}
    first = choose(scores, "sm", "random", n_groups=3, per_group=2, seed=7)
    assert first == choose(scores, "sm", "random", n_groups=3, per_group=2, seed=7)
    assert len(first) == 3 and all(len(stems) == 2 for _, stems in first)
    assert any(choose(scores, "sm", "random", n_groups=3, per_group=2, seed=s) != first for s in range(3))


def test_png_grid_has_one_tile_per_image_and_method_at_the_right_place(tree, tmp_path: Path) -> None:
    docs = collect_results([tree.results])
    scores = {doc["method"]: read_image_scores(doc) for doc in docs}
    assert list(scores) == METHODS and len(scores["blurry"]) == 12
    selection = choose(scores, "sm", "disagree", n_groups=2, per_group=3)
    sources = PictureSources("Mini", METHODS, tree.pred_root, tree.data_root)
    out = tmp_path / "g.png"
    grid = write_gallery(sources, selection, METHODS, out, scores, annotate="sm", tile_height=48)
    assert len(grid.tiles) == (2 + len(METHODS)) * 2 * 3
    assert [t.caption for t in grid.tiles].count(None) == 2 * 2 * 3  # image and GT carry no score
    png = io.read_bgr(out)
    assert png.shape[:2] == (round(grid.height * TILE_DPI), round(grid.width * TILE_DPI))
    # the GT tile of the first shown image sits where the grid says, unresampled
    group, stem = selection[0][0], selection[0][1][0]
    gt = cv2.resize(io.read_gray(tree.data_root / "gts" / "Mini" / group / f"{stem}.png"), (64, 48),
                    interpolation=cv2.INTER_AREA)  # fmt: skip
    tile = grid.tiles[1]
    assert tile.pixels.shape == (48, 64)
    y, x = round(tile.y * TILE_DPI), round(tile.x * TILE_DPI)
    drawn = png[y : y + 48, x : x + 64, 0].astype(int)
    assert np.abs(drawn - gt).mean() < 8  # antialiasing at the tile border only
    # a score under a map is that image's CSV value
    key = (group, stem)
    assert grid.tiles[2].caption == f"Sm {scores['blurry'][key]['sm']:.3f}"


def test_cli_png_is_byte_identical_across_runs_and_columns_transpose(tree, tmp_path: Path) -> None:
    first, second, cols = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for out in (first, second):
        result = cli(
            *_args(tree, "--n-groups", "2", "--per-group", "2", "--annotate", "sm", "--out", str(out))
        )
        assert result.returncode == 0, result.stderr
        assert f"wrote {out} (2 groups, 4 images, 3 methods, --pick disagree" in result.stdout
    assert first.read_bytes() == second.read_bytes()
    shapes = []
    for layout, out in (("rows", tmp_path / "r.png"), ("columns", cols)):
        result = cli(
            *_args(tree, "--n-groups", "2", "--per-group", "3", "--layout", layout, "--out", str(out))
        )
        assert result.returncode == 0, result.stderr
        shapes.append(io.read_bgr(out).shape)
    (rows_h, rows_w, _), (cols_h, cols_w, _) = shapes
    assert rows_w > cols_w and rows_h < cols_h  # 6 tiles wide x 5 high, and transposed


def test_pdf_embeds_every_tile_once_at_tile_resolution(tree, tmp_path: Path) -> None:
    out = tmp_path / "g.pdf"
    result = cli(
        *_args(tree, "--n-groups", "3", "--per-group", "2", "--tile-height", "40", "--out", str(out))
    )
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and b"CreationDate" not in data
    assert data.count(b"/Subtype /Image") == 3 * 2 * (2 + len(METHODS))
    assert data.count(b"/Height 40") == data.count(b"/Subtype /Image")
    rerun = tmp_path / "h.pdf"
    cli(*_args(tree, "--n-groups", "3", "--per-group", "2", "--tile-height", "40", "--out", str(rerun)))
    assert rerun.read_bytes() == data


def test_missing_map_image_or_pred_root_is_one_line_naming_it(tree, tmp_path: Path) -> None:
    import shutil

    preds = tmp_path / "preds"
    shutil.copytree(tree.pred_root, preds)
    group = sorted(p.name for p in (preds / "noisy" / "Mini").iterdir())[0]
    victim = sorted((preds / "noisy" / "Mini" / group).iterdir())[0]
    victim.unlink()
    out = tmp_path / "g.png"
    args = ["gallery", str(tree.results), "--dataset", "Mini", "--pred-root", str(preds),
            "--data-root", str(tree.data_root), "--groups", group, "--per-group", "4", "--out", str(out)]  # fmt: skip
    assert_refused(cli(*args), victim.with_suffix(".png"), "prediction not found")
    assert not out.exists()
    assert_refused(cli("gallery", str(tree.results), "--dataset", "Mini"), "--pred-root")
    assert_refused(cli(*_args(tree, "--groups", "nope", "--out", str(out))), "unknown group(s) nope")
    assert_refused(cli(*_args(tree, "--out", str(tmp_path / "g.svg"))), "g.svg", "unsupported figure format")
    data = tmp_path / "data"
    shutil.copytree(tree.data_root, data)
    image = sorted((data / "images" / "Mini" / group).iterdir())[0]
    image.unlink()
    args = _args(tree, "--groups", group, "--per-group", "4", "--out", str(out))
    args[args.index("--data-root") + 1] = str(data)
    assert_refused(cli(*args), data / "images" / "Mini" / group, "image not found")
