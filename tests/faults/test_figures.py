"""Faults of ``gallery`` and ``report --format html|--explain``: full disk, bad inputs, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import assert_refused, cli, snapshot
from tests.results_tree import make_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory):
    return make_tree(tmp_path_factory.mktemp("faults-figures"))


def _maps(tree) -> list[str]:
    return ["--pred-root", str(tree.pred_root), "--data-root", str(tree.data_root)]


def test_full_disk_leaves_no_partial_figure_or_page(tree, full_disk: Path) -> None:
    before = snapshot(full_disk)
    gallery = full_disk / "g.png"
    assert_refused(cli("gallery", tree.results, "--dataset", "Mini", *_maps(tree), "--out", gallery), gallery)
    page = full_disk / "r.html"
    assert_refused(cli("report", tree.results, "--out", page, *_maps(tree)), page)
    assert snapshot(full_disk) == before


def test_missing_per_image_csv_is_named(tree, tmp_path: Path) -> None:
    import shutil

    results = tmp_path / "results"
    shutil.copytree(tree.results, results)
    csv = results / "noisy" / "Mini.images.csv"
    csv.unlink()
    out = tmp_path / "g.pdf"
    assert_refused(cli("gallery", results, "--dataset", "Mini", *_maps(tree), "--out", out), csv, "per-image")
    assert_refused(cli("report", results, "--out", tmp_path / "r.html", *_maps(tree)), csv)
    assert not out.exists() and not (tmp_path / "r.html").exists()


def test_explain_with_a_wrong_prediction_folder_names_it(tree, tmp_path: Path) -> None:
    empty = tmp_path / "preds"
    (empty / "other" / "Mini").mkdir(parents=True)
    result = cli("report", tree.results, "--explain", "--pred-root", empty, "--data-root", tree.data_root)
    assert_refused(result, empty)
