"""Curve figures: files written atomically as PNG/PDF, identical bytes on reruns, legend order, errors."""

from __future__ import annotations

import copy

import cv2
import pytest

from cosalbench.cli import main
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.plots import order_by_max_f, plot_curves, plot_group_differences
from tests.test_report_docs import image_doc, synthetic_images, write_doc


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return [
        image_doc(name, synthetic_images(i, [3, 4], q))
        for i, (name, q) in enumerate([("mid", 0.5), ("good", 0.8), ("bad", 0.2)])
    ]


def test_png_is_written_and_deterministic(tmp_path, docs):
    first = plot_curves(docs, tmp_path / "a.png", curves=("pr", "fm", "em", "roc"))
    second = plot_curves(docs, tmp_path / "b.png", curves=("pr", "fm", "em", "roc"))
    assert first == tmp_path / "a.png"
    data = first.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == second.read_bytes()
    height, width = cv2.imread(str(first)).shape[:2]
    assert (width, height) == (4 * 4 * 150, int(4.4 * 150))  # four 4-inch panels at 150 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temp file left


def test_pdf_is_written_and_deterministic(tmp_path, docs):
    first = plot_curves(docs, tmp_path / "a.pdf", title="CoCA")
    second = plot_curves(docs, tmp_path / "b.pdf", title="CoCA")
    assert first.read_bytes()[:5] == b"%PDF-" and first.read_bytes() == second.read_bytes()
    assert b"CreationDate" not in first.read_bytes()


def test_legend_is_sorted_by_max_f(docs):
    assert [docs[i]["method"] for i in order_by_max_f(docs, "image_mean")] == ["good", "mid", "bad"]
    assert max(docs[1]["curves"]["group_mean"]["fm"]) > max(docs[0]["curves"]["group_mean"]["fm"])


def test_errors(tmp_path, docs):
    with pytest.raises(CosalbenchError, match="unsupported figure format"):
        plot_curves(docs, tmp_path / "a.jpg")
    other = copy.deepcopy(docs[0]) | {"dataset": "CoCA"}
    with pytest.raises(CosalbenchError, match="several datasets"):
        plot_curves([docs[1], other], tmp_path / "a.png")
    with pytest.raises(CosalbenchError, match="unknown curve kind"):
        plot_curves(docs, tmp_path / "a.png", curves=("pr", "iou"))
    no_roc = [copy.deepcopy(d) for d in docs]
    for doc in no_roc:
        doc["curves"]["image_mean"]["tpr"] = None
    plot_curves(no_roc, tmp_path / "pr.png", curves=("pr",))  # other panels are unaffected
    with pytest.raises(CosalbenchError, match="'roc' panel"):
        plot_curves(no_roc, tmp_path / "roc.png", curves=("roc",))
    assert not (tmp_path / "roc.png").exists()


def test_plot_cli(tmp_path, docs, capsys):
    for doc in docs:
        write_doc(tmp_path / "res", doc)
    out = tmp_path / "fig" / "synth.png"
    main(["plot", str(tmp_path / "res"), "--dataset", "synth", "--curves", "pr,roc", "--out", str(out)])
    assert out.stat().st_size > 10_000
    assert capsys.readouterr().out == f"wrote {out} (3 methods, Synth, image_mean)\n"


def test_group_difference_bars(tmp_path, docs):
    first = plot_group_differences(docs[0], docs[1], tmp_path / "d.png", metric="mae")
    assert (
        first.read_bytes()
        == plot_group_differences(docs[0], docs[1], tmp_path / "e.png", metric="mae").read_bytes()
    )
    height, width = cv2.imread(str(first)).shape[:2]
    assert width == 6 * 150 and height == 3 * 150  # two groups: the minimum height
    undefined = copy.deepcopy(docs[1])
    for entry in undefined["groups"].values():
        entry["metrics"]["wfm"] = None
    with pytest.raises(CosalbenchError, match="share no group with a value of wfm"):
        plot_group_differences(docs[0], undefined, tmp_path / "f.png", metric="wfm")


def test_compare_cli_figure(tmp_path, docs):
    paths = [write_doc(tmp_path / "res", doc) for doc in docs[:2]]
    figure = tmp_path / "groups.pdf"
    main(["compare", *map(str, paths), "--n-boot", "20", "--n-perm", "20", "--figure", str(figure)])
    assert figure.read_bytes()[:5] == b"%PDF-"
