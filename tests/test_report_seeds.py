"""``report`` over several seeds (mean ± sample std (n), checked against numpy) and ``--group-by train_set``."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest

from cosalbench.cli import main
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.html_report import html_report
from cosalbench.metrics.report import by_group_table, render, results_table
from cosalbench.metrics.results_io import collect_results
from cosalbench.metrics.runs import run_labels, summarize
from tests.browser import Browser, chromium
from tests.report_provenance import seeded_doc, write_seeded
from tests.test_report_docs import table_doc, write_doc

RNG = np.random.default_rng(7)
# GCoNet: 3 seeds on CoCA, 2 on CoSOD3k (mixed n); RCGS: 4 seeds on CoCA only; cbcs: one run, no provenance
SM = {
    ("GCoNet", "CoCA"): RNG.uniform(0.68, 0.74, 3),
    ("GCoNet", "CoSOD3k"): RNG.uniform(0.78, 0.82, 2),
    ("RCGS", "CoCA"): RNG.uniform(0.60, 0.66, 4),
}
MAE = {key: RNG.uniform(0.08, 0.14, len(values)) for key, values in SM.items()}
CBCS = {"sm": 0.55, "mae": 0.2}


def docs_of_seeds() -> list[dict]:
    docs = []
    for (method, dataset), values in SM.items():
        model = method.lower()
        for seed, (sm, mae) in enumerate(zip(values, MAE[method, dataset], strict=True)):
            docs.append(seeded_doc(method, dataset, {"sm": sm, "mae": mae}, seed, model=model))
    return docs + [table_doc("cbcs", "CoCA", CBCS)]


def expected(values: np.ndarray) -> str:
    """The cell as numpy computes it: mean ± sample std (ddof=1) (n)."""
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} ({len(values)})"


def cells(table) -> dict[str, list[str]]:
    return {label: [c.text for c in row] for label, row in table.rows}


def test_cells_are_mean_and_sample_std_over_the_seeds():
    table = results_table(docs_of_seeds(), ["sm", "mae"])
    assert cells(table) == {
        "GCoNet": [expected(SM["GCoNet", "CoCA"]), expected(MAE["GCoNet", "CoCA"]),
                   expected(SM["GCoNet", "CoSOD3k"]), expected(MAE["GCoNet", "CoSOD3k"])],
        "RCGS": [expected(SM["RCGS", "CoCA"]), expected(MAE["RCGS", "CoCA"]), "–", "–"],
        "cbcs": ["0.550", "0.200", "–", "–"],
    }  # fmt: skip
    caption = table.caption
    assert "mean ± sample standard deviation (ddof=1) over n seeds" in caption
    assert "GCoNet: seeds 0, 1, 2 on CoCA; 0, 1 on CoSOD3k; RCGS: seeds 0, 1, 2, 3" in caption
    assert "(ranked by the mean)" in caption and "a value without ± is a single run" in caption


def test_marks_use_the_means():
    # A's first seed is the best single run, but B has the better mean
    docs = [seeded_doc("A", "CoCA", {"sm": v}, s) for s, v in enumerate((0.80, 0.40, 0.42))]
    docs += [seeded_doc("B", "CoCA", {"sm": v}, s) for s, v in enumerate((0.60, 0.62))]
    docs += [table_doc("C", "CoCA", {"sm": 0.58})]
    table = results_table(docs, ["sm"])
    assert [(label, row[0].mark) for label, row in table.rows] == [("A", 0), ("B", 1), ("C", 2)]
    assert np.mean([0.60, 0.62]) > 0.58 > np.mean([0.80, 0.40, 0.42])


def test_summary_of_undefined_and_nan_values():
    assert summarize([None, None]).mean is None
    partial = summarize([0.5, None, 0.7])  # the metric is undefined in one run: n counts the others
    assert (partial.n, partial.mean) == (2, pytest.approx(0.6))
    assert partial.std == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert math.isnan(summarize([0.5, math.nan]).mean)
    one = summarize([0.5])
    assert (one.mean, one.std, one.n) == (0.5, None, 1)
    docs = [seeded_doc("A", "CoCA", {"sm": v}, s) for s, v in enumerate((0.5, None))]
    assert cells(results_table(docs, ["sm"])) == {"A": ["0.500 (1)"]}  # two runs, one value: n says so


def test_every_format_carries_mean_std_and_n():
    docs = docs_of_seeds()
    table = results_table(docs, ["sm"], datasets=["CoCA"])
    sm = SM["GCoNet", "CoCA"]
    mean, std = f"{np.mean(sm):.3f}", f"{np.std(sm, ddof=1):.3f}"
    md = render(table, "md")
    assert re.search(rf"\| GCoNet +\| +(\*\*)?{mean} ± {std} \(3\)(\*\*)? \|", md), md
    latex = render(table, "latex")
    assert rf"{mean} $\pm$ {std} (3)" in latex and r"ddof=1" in latex
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert list(rows[0]) == ["method", "dataset", "protocol", "aggregation", "metric", "mean", "std", "n",
                             "seeds", "rank"]  # fmt: skip
    by_method = {row["method"]: row for row in rows}
    assert (by_method["GCoNet"]["mean"], by_method["GCoNet"]["std"]) == (mean, std)
    assert (by_method["GCoNet"]["n"], by_method["GCoNet"]["seeds"]) == ("3", "0, 1, 2")
    assert float(by_method["RCGS"]["std"]) == pytest.approx(np.std(SM["RCGS", "CoCA"], ddof=1), abs=5e-4)
    assert (by_method["cbcs"]["mean"], by_method["cbcs"]["std"], by_method["cbcs"]["n"]) == ("0.550", "", "1")
    fragment = render(table, "html")
    assert f"<th>GCoNet</th><td>{mean} ± {std} (3)</td>" in fragment.replace("<b>", "").replace("</b>", "")
    page = html_report(docs, ["sm"])
    best = max(("GCoNet", "RCGS"), key=lambda m: round(np.mean(SM[m, "CoCA"]), 3))
    best_mean = f"{np.mean(SM[best, 'CoCA']):.3f}"
    assert f'<td data-v="{best_mean}" class="m1">{best_mean} ± ' in page  # sorted by the mean
    assert "GCoNet (seed 0)" in page and "GCoNet (seed 2)" in page  # curves and groups: one per run


def test_report_cli_reads_seed_folders(tmp_path: Path, capsys):
    for doc in docs_of_seeds():
        write_seeded(tmp_path / "results", doc)
    main(["report", str(tmp_path / "results"), "--metrics", "sm", "--datasets", "CoSOD3k", "--format", "csv"])
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"GCoNet,CoSOD3k,pysodmetrics,image_mean,sm,{np.mean(SM['GCoNet', 'CoSOD3k']):.3f},"
        f'{np.std(SM["GCoNet", "CoSOD3k"], ddof=1):.3f},2,"0, 1",'
    ]


def test_seeds_of_different_setups_are_not_averaged():
    docs = [seeded_doc("A", "CoCA", {"sm": 0.5}, 0), seeded_doc("A", "CoCA", {"sm": 0.6}, 1, input_size=320)]
    with pytest.raises(CosalbenchError, match="provenance.input_size 320, the first 224"):
        results_table(docs)
    docs[1] = seeded_doc("A", "CoCA", {"sm": 0.6}, 1, train_sets=("DUTS_class",))
    with pytest.raises(CosalbenchError, match="--group-by train_set"):
        results_table(docs)
    docs[1] = {**seeded_doc("A", "CoCA", {"sm": 0.6}, 1), "n_images": 3}
    with pytest.raises(CosalbenchError, match="scored 3 images, seed 0 scored 2"):
        results_table(docs)


def train_set_docs() -> list[dict]:
    """GCoNet trained on two sets (two seeds on COCO-SEG), RCGS on COCO-SEG, cbcs without provenance."""
    return [
        table_doc("cbcs", "CoCA", {"sm": 0.55}),
        seeded_doc("GCoNet", "CoCA", {"sm": 0.70}, 0),
        seeded_doc("GCoNet", "CoCA", {"sm": 0.72}, 1),
        seeded_doc("GCoNet", "CoCA", {"sm": 0.66}, 0, train_sets=("DUTS_class",)),
        seeded_doc("RCGS", "CoCA", {"sm": 0.64}, 0, model="rcgs"),
        seeded_doc("RCGS", "CoCA", {"sm": 0.60}, 0, model="rcgs", train_sets=("DUTS_class", "COCO-SEG")),
        seeded_doc("GICD", "CoCA", {"sm": 0.65}, 0, model="gicd", train_sets=("DUTS_class",)),
    ]


def test_group_by_train_set_makes_one_block_per_training_set():
    table = results_table(train_set_docs(), ["sm"], group_by="train_set")
    assert table.block_starts == {
        0: "trained on COCO-SEG",
        2: "trained on DUTS_class",
        4: "trained on DUTS_class + COCO-SEG",
        5: "unknown training set",
    }
    pairs = np.array([0.70, 0.72])
    assert [(label, row[0].text, row[0].mark) for label, row in table.rows] == [
        ("GCoNet", expected(pairs), 1),
        ("RCGS", "0.640", 2),  # ranked within its block
        ("GCoNet", "0.660", 1),
        ("GICD", "0.650", 2),
        ("RCGS", "0.600", 0),
        ("cbcs", "0.550", 0),
    ]
    assert "Best per column within each training-set block" in table.caption
    assert "GCoNet trained on COCO-SEG: seeds 0, 1" in table.caption
    md = render(table, "md").splitlines()
    assert md[4].startswith("| *trained on COCO-SEG*") and md[-2].startswith("| *unknown training set*")
    latex = render(table, "latex")
    assert "\\midrule\n\\multicolumn{2}{l}{\\textit{trained on DUTS\\_class}} \\\\\nGCoNet & " in latex
    assert "\\midrule\n\\multicolumn{2}{l}{\\textit{trained on COCO-SEG}} \\\\\nGCoNet" in latex
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [(r["train_set"], r["method"]) for r in rows] == [
        ("COCO-SEG", "GCoNet"), ("COCO-SEG", "RCGS"), ("DUTS_class", "GCoNet"), ("DUTS_class", "GICD"),
        ("DUTS_class + COCO-SEG", "RCGS"), ("unknown training set", "cbcs"),
    ]  # fmt: skip
    fragment = render(table, "html")
    assert fragment.count("<tbody>") == 4
    assert '<tr class="block-head"><th colspan="2">trained on DUTS_class + COCO-SEG</th></tr>' in fragment
    page = html_report(train_set_docs(), ["sm"], group_by="train_set")
    assert page.count('<tr class="block-head">') == 4 and "</tbody><tbody>" in page


def test_without_group_by_one_method_of_two_training_sets_is_refused():
    with pytest.raises(CosalbenchError, match="provenance.train_sets") as info:
        results_table(train_set_docs(), ["sm"])
    assert "--group-by train_set" in str(info.value)


def test_by_group_with_seeds():
    docs = [seeded_doc("A", "CoCA", {"sm": 0.5}, s) for s in (0, 1, 2)] + [
        table_doc("B", "CoCA", {"sm": 0.4})
    ]
    with pytest.raises(
        CosalbenchError, match=r"compares two single runs, and A has 3 results on CoCA \(seeds 0, 1, 2\)"
    ):
        by_group_table(docs, "CoCA", ["sm"])
    docs[1]["groups"]["g"]["metrics"] = {**docs[1]["groups"]["g"]["metrics"], "sm": 0.6}
    table = by_group_table(docs[:2], "CoCA", ["sm"])  # two seeds of one method: run-to-run per group
    assert [c.label for c in table.columns[1:3]] == ["A (seed 0)", "A (seed 1)"]
    assert [c.text for c in table.rows[0][1]] == ["2", "0.500", "0.600", "+0.100"]


def test_compare_names_the_seeds_a_folder_holds(tmp_path: Path, capsys):
    for seed in (0, 1):
        write_seeded(tmp_path, seeded_doc("A", "CoCA", {"sm": 0.5}, seed))
    write_seeded(tmp_path, table_doc("B", "CoCA", {"sm": 0.5}))
    with pytest.raises(SystemExit):
        main(["compare", str(tmp_path), str(tmp_path / "B"), "--dataset", "CoCA"])
    assert "A/CoCA (pysodmetrics, seed 0), A/CoCA (pysodmetrics, seed 1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": "0"}, "'provenance.seed' is '0', not an integer or null"),
        ({"train_sets": "COCO-SEG"}, "'provenance.train_sets' is 'COCO-SEG', not a list of strings"),
        ({"checkpoint": {"file": "x.pth"}}, "'provenance.checkpoint' is {'file': 'x.pth'}, not an object"),
        ({"seed": True}, "'provenance.seed' is True"),
    ],
)
def test_malformed_provenance_is_named(tmp_path: Path, change: dict, message: str):
    doc = seeded_doc("A", "CoCA", {"sm": 0.5}, None)
    doc["provenance"].update(change)
    path = write_seeded(tmp_path, doc)
    with pytest.raises(CosalbenchError, match=re.escape(message)) as info:
        collect_results([tmp_path])
    assert str(path) in str(info.value)
    bare = write_doc(tmp_path / "bare", {**table_doc("A", "CoCA", {"sm": 0.5}), "provenance": [1]})
    with pytest.raises(CosalbenchError, match="'provenance' is list, not an object"):
        collect_results([bare])


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (CI installs Debian's chromium)")
def test_sorting_the_page_keeps_rows_inside_their_training_set_block(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html_report(train_set_docs(), ["sm"], group_by="train_set"), encoding="utf-8")
    rows = "Array.from(document.querySelectorAll('#summary-table tbody th')).map(th => th.textContent)"
    with Browser(tmp_path / "profile") as browser:
        browser.open(page)
        before = browser.evaluate(rows)
        assert before == ["trained on COCO-SEG", "GCoNet", "RCGS", "trained on DUTS_class", "GCoNet", "GICD",
                          "trained on DUTS_class + COCO-SEG", "RCGS", "unknown training set", "cbcs"]  # fmt: skip
        header = "document.querySelector('#summary-table thead tr:nth-child(2) th')"
        browser.evaluate(f"{header}.click()")  # Sm, higher first
        browser.evaluate(f"{header}.click()")  # then ascending: each block reverses on its own
        assert browser.evaluate(rows) == ["trained on COCO-SEG", "RCGS", "GCoNet", "trained on DUTS_class",
                                          "GICD", "GCoNet", "trained on DUTS_class + COCO-SEG", "RCGS",
                                          "unknown training set", "cbcs"]  # fmt: skip
        assert browser.console_errors() == []


def test_curve_labels_name_the_seed_or_training_set():
    from cosalbench.metrics.plots import _labels

    docs = [seeded_doc("A", "CoCA", {"sm": 0.5}, s) for s in (0, 1)] + [table_doc("B", "CoCA", {"sm": 0.5})]
    assert run_labels(docs) == _labels(docs) == ["A (seed 0)", "A (seed 1)", "B"]
    other = seeded_doc("A", "CoCA", {"sm": 0.5}, 0, train_sets=("DUTS_class",))
    assert run_labels([docs[0], other]) == ["A (COCO-SEG)", "A (DUTS_class)"]
    assert _labels([docs[2], table_doc("C", "CoCA", {"sm": 0.5})]) == ["B", "C"]
