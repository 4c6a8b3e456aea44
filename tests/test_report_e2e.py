"""report / compare / plot on the documents ``evaluate`` writes for the synthetic set."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cosalbench.cli import main
from cosalbench.layout import gts_dir
from cosalbench.metrics.compare import compare_results
from cosalbench.metrics.results_io import collect_results


@pytest.fixture(scope="module")
def results(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Evaluation documents of two simple methods: a blurred and a dimmed copy of the GT."""
    from cosalbench.metrics.evaluate import evaluate_predictions

    preds = tmp_path_factory.mktemp("preds")
    for gt_path in sorted(gts_dir(synth_root, "Synth").rglob("*.png")):
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        rel = gt_path.relative_to(gts_dir(synth_root, "Synth").parent)
        for method, pred in (
            ("blur", cv2.GaussianBlur(gt, (31, 31), 0)),
            ("dim", (gt * 0.6 + 40).astype(np.uint8)),
        ):
            (preds / method / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(preds / method / rel), pred)
    out = tmp_path_factory.mktemp("results")
    evaluate_predictions(preds, ["Synth"], data_root=synth_root, out=out, progress=False)
    return out


def test_reaggregation_matches_evaluate(results):
    docs = collect_results([results])
    assert [d["method"] for d in docs] == ["blur", "dim"]
    for aggregation in ("image_mean", "group_mean"):
        row = compare_results(docs[0], docs[1], ["sm", "maxfm", "maxem", "mae", "auc"], aggregation, 200, 200)
        assert not [n for n in row["notes"] if "recomputed" in n]  # values from groups equal the documents'
        for metric in row["metrics"]:
            assert metric["a"] == pytest.approx(docs[0][aggregation][metric["metric"]], abs=1e-9)


def test_commands_on_evaluate_output(results, tmp_path, capsys):
    main(["report", str(results), "--format", "latex"])
    latex = capsys.readouterr().out
    assert latex.count(r"\textbf{") == 4 and r"\multicolumn{4}{c}{Synth}" in latex
    main(
        [
            "compare",
            str(results / "blur"),
            str(results / "dim"),
            "--dataset",
            "Synth",
            "--n-boot",
            "200",
            "--n-perm",
            "200",
        ]
    )
    assert "Synth: B = dim vs A = blur" in capsys.readouterr().out
    main(
        [
            "plot",
            str(results),
            "--dataset",
            "Synth",
            "--curves",
            "pr,fm,em,roc",
            "--out",
            str(tmp_path / "c.pdf"),
        ]
    )
    assert (tmp_path / "c.pdf").stat().st_size > 5_000 and "wrote" in capsys.readouterr().out
    main(["report", str(results), "--by-group", "--dataset", "Synth", "--format", "csv"])
    assert capsys.readouterr().out.count("\n") == 1 + 4 * 4  # header + 4 groups x 4 metrics
