"""Tables from result documents: exact Markdown/LaTeX text, marks, protocols, by-group listing, CLI."""

from __future__ import annotations

import csv
import io
import math

import pytest

from cosalbench.cli import main
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.report import by_group_table, format_for, rank_marks, render, results_table
from tests.test_report_docs import table_doc, write_doc

CAPTION = (
    "Protocol: pysodmetrics; aggregation: image_mean (mean over all images); cosalbench 0.1.0. Best per column "
    "in bold, second best underlined; ↑ higher is better, ↓ lower is better; – no result."
)
EXPECTED_MD = f"""*{CAPTION}*

| Method |    CoCA Sm ↑ | CoCA maxFm ↑ |   CoCA MAE ↓ | CoSOD3k Sm ↑ | CoSOD3k maxFm ↑ | CoSOD3k MAE ↓ |
| ------ | -----------: | -----------: | -----------: | -----------: | --------------: | ------------: |
| A      |    **0.700** | <u>0.600</u> | <u>0.100</u> | <u>0.800</u> |           0.700 |     **0.050** |
| B_net  |    **0.700** |    **0.650** |    **0.090** |            – |               – |             – |
| C      | <u>0.650</u> |        0.500 |        0.120 |    **0.810** |             n/a |  <u>0.060</u> |
"""
EXPECTED_LATEX = r"""\begin{table}[t]
\centering
\caption{Protocol: pysodmetrics; aggregation: image\_mean (mean over all images); cosalbench 0.1.0. Best per column in bold, second best underlined; $\uparrow$ higher is better, $\downarrow$ lower is better; -- no result.}
\begin{tabular}{lcccccc}
\toprule
 & \multicolumn{3}{c}{CoCA} & \multicolumn{3}{c}{CoSOD3k} \\
\cmidrule(lr){2-4} \cmidrule(lr){5-7}
Method & $S_\alpha\uparrow$ & $F_\beta^{\max}\uparrow$ & $\mathrm{MAE}\downarrow$ & $S_\alpha\uparrow$ & $F_\beta^{\max}\uparrow$ & $\mathrm{MAE}\downarrow$ \\
\midrule
A & \textbf{0.700} & \underline{0.600} & \underline{0.100} & \underline{0.800} & 0.700 & \textbf{0.050} \\
B\_net & \textbf{0.700} & \textbf{0.650} & \textbf{0.090} & -- & -- & -- \\
C & \underline{0.650} & 0.500 & 0.120 & \textbf{0.810} & n/a & \underline{0.060} \\
\bottomrule
\end{tabular}
\end{table}
"""


def fixed_docs() -> list[dict]:
    """Three methods on two datasets: a tie at 3 digits (CoCA Sm), a missing cell (B_net on
    CoSOD3k), an undefined metric (C's maxFm on CoSOD3k) and MAE where lower is better."""
    return [
        table_doc("A", "CoCA", {"sm": 0.7, "maxem": 0.8, "maxfm": 0.6, "mae": 0.1}),
        table_doc("B_net", "CoCA", {"sm": 0.7004, "maxem": 0.79, "maxfm": 0.65, "mae": 0.09}),
        table_doc("C", "CoCA", {"sm": 0.65, "maxem": 0.81, "maxfm": 0.5, "mae": 0.12}),
        table_doc("A", "CoSOD3k", {"sm": 0.8, "maxem": 0.9, "maxfm": 0.7, "mae": 0.05}),
        table_doc("C", "CoSOD3k", {"sm": 0.81, "maxem": 0.88, "maxfm": None, "mae": 0.06}),
    ]


def test_markdown_table_text():
    assert render(results_table(fixed_docs(), ["sm", "maxfm", "mae"]), "md") == EXPECTED_MD


def test_latex_table_text():
    assert render(results_table(fixed_docs(), ["sm", "maxfm", "mae"]), "latex") == EXPECTED_LATEX


def test_csv_and_html_carry_the_same_marks():
    table = results_table(fixed_docs(), ["sm", "mae"], datasets=["CoCA"])
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [(r["method"], r["metric"], r["value"], r["rank"]) for r in rows] == [
        ("A", "sm", "0.700", "1"), ("A", "mae", "0.100", "2"),
        ("B_net", "sm", "0.700", "1"), ("B_net", "mae", "0.090", "1"),
        ("C", "sm", "0.650", "2"), ("C", "mae", "0.120", ""),
    ]  # fmt: skip
    assert {r["protocol"] for r in rows} == {"pysodmetrics"} and {r["aggregation"] for r in rows} == {
        "image_mean"
    }
    page = render(table, "html")
    assert page.count("<b>") == 3 and page.count("<u>") == 2
    assert '<th colspan="2">CoCA</th>' in page and "<caption>Protocol: pysodmetrics" in page
    assert "<tr><th>C</th><td><u>0.650</u></td><td>0.120</td></tr>" in page


@pytest.mark.parametrize(
    ("values", "lower", "expected"),
    [
        ([0.5, 0.7, 0.6], False, [0, 1, 2]),
        ([0.5, 0.7, 0.6], True, [1, 0, 2]),  # mae: lower is better
        ([0.7, 0.7, 0.6, 0.5], False, [1, 1, 2, 0]),  # a tie shares the best mark
        ([0.6, 0.7, 0.6, 0.5], False, [2, 1, 2, 0]),  # and the second best mark
        ([0.1234, 0.1231, 0.1], False, [1, 1, 2]),  # ranks use the displayed (rounded) values
        ([0.5, None, math.nan, 0.4], False, [1, 0, 0, 2]),  # undefined and NaN are never marked
        ([0.5, None], False, [0, 0]),  # a single number is not ranked
        ([0.5, 0.5], False, [1, 1]),
    ],
)
def test_rank_marks(values, lower, expected):
    assert rank_marks(values, lower, digits=3) == expected


def test_mixed_protocols_are_refused_unless_allowed():
    docs = fixed_docs()[:2] + [table_doc("E", "CoCA", {"sm": 0.9}, protocol="eval-co-sod")]
    with pytest.raises(CosalbenchError, match="different protocols") as info:
        results_table(docs)
    assert "--allow-mixed-protocols" in str(info.value)
    table = results_table(docs, ["sm"], allow_mixed_protocols=True)
    assert [c.group for c in table.columns] == [
        "CoCA (pysodmetrics, image_mean)",
        "CoCA (eval-co-sod, image_mean)",
    ]
    assert [[c.text for c in cells] for _, cells in table.rows] == [
        ["0.700", "–"],
        ["0.700", "–"],
        ["–", "0.900"],
    ]
    assert table.caption.startswith("Protocols and aggregations as named in the column headers")


def test_aggregation_default_follows_the_protocol():
    docs = [
        table_doc(m, "CoSOD3k", {"sm": 0.1}, "cosal-matlab", group_values={"sm": v})
        for m, v in (("A", 0.8), ("B", 0.9))
    ]
    table = results_table(docs, ["sm"])
    assert [cells[0].text for _, cells in table.rows] == ["0.800", "0.900"]
    assert "aggregation: group_mean (mean within each group, then over groups)" in table.caption
    table = results_table(docs, ["sm"], aggregation="image_mean")
    assert [cells[0].text for _, cells in table.rows] == ["0.100", "0.100"]


def test_nan_metrics_and_duplicates():
    doc = table_doc("A", "CoCA", {"sm": None, "mae": 0.1})
    doc["nan_images"] = {"sm": ["g/0001"]}  # null because an image made S NaN, not undefined
    table = results_table([doc, table_doc("B", "CoCA", {"sm": 0.5, "mae": 0.2})], ["sm", "mae"])
    assert [[(c.text, c.mark) for c in cells] for _, cells in table.rows] == [
        [("nan", 0), ("0.100", 1)],
        [("0.500", 0), ("0.200", 2)],
    ]
    with pytest.raises(CosalbenchError, match="second result for method 'A' on CoCA"):
        results_table([doc, dict(doc)])


def by_group_docs() -> list[dict]:
    a = table_doc("A", "CoCA", {"sm": 0.5})
    b = table_doc("B", "CoCA", {"sm": 0.5})
    per_group = {"apple": (0.50, 0.55, 0.10, 0.12), "bird": (0.70, 0.40, 0.20, 0.05), "cup": (0.60, 0.80, 0.3, 0.3),
                 "dog": (0.90, 0.90, 0.1, 0.1), "egg": (0.30, 0.50, 0.2, 0.2), "only_a": (0.1, 0.1, 0.1, 0.1)}  # fmt: skip
    for name, (sa, sb, ma, mb) in per_group.items():
        for doc, sm, mae in ((a, sa, ma), (b, sb, mb)):
            if name != "only_a" or doc is a:
                doc["groups"][name] = {"n_images": 3, "metrics": {"sm": sm, "mae": mae}, "curves": {}}
    for doc in (a, b):
        del doc["groups"]["g"]
    return [a, b]


def test_by_group_lists_largest_differences_first():
    table = by_group_table(by_group_docs(), "coca", ["sm", "mae"], top=3)
    # |ΔS|: bird 0.30, cup 0.20, egg 0.20 (tie broken by name), apple 0.05, dog 0
    assert [label for label, _ in table.rows] == ["bird", "cup", "egg"]
    bird = [(c.text, c.mark) for c in table.rows[0][1]]
    assert bird == [
        ("3", 0),
        ("0.700", 1),
        ("0.400", 0),
        ("-0.300", 0),
        ("0.200", 0),
        ("0.050", 1),
        ("-0.150", 0),
    ]
    assert (
        "3 of 5 shared groups" in table.caption and "1 group(s) present in only one result" in table.caption
    )
    assert [r for r, _ in by_group_table(by_group_docs(), "CoCA", ["mae"], top=None).rows][:2] == [
        "bird",
        "apple",
    ]
    with pytest.raises(CosalbenchError, match="exactly two results"):
        by_group_table(by_group_docs()[:1], "CoCA")


def test_format_from_suffix():
    assert [format_for(p, None) for p in ("t.tex", "t.CSV", "t.html", "t.md", None)] == [
        "latex",
        "csv",
        "html",
        "md",
        "md",
    ]
    assert format_for("t.tex", "md") == "md"


def test_report_cli_writes_the_table(tmp_path, capsys):
    for doc in fixed_docs():
        write_doc(tmp_path / "results", doc)
    out = tmp_path / "table.md"
    main(["report", str(tmp_path / "results"), "--metrics", "sm,maxfm,mae", "--out", str(out)])
    # folders are read in sorted path order: A, B_net, C
    assert out.read_text(encoding="utf-8") == EXPECTED_MD
    main(["report", str(tmp_path / "results"), "--metrics", "sm", "--datasets", "CoSOD3k", "--format", "csv"])
    assert capsys.readouterr().out.splitlines()[1:] == [
        "A,CoSOD3k,pysodmetrics,image_mean,sm,0.800,2",
        "C,CoSOD3k,pysodmetrics,image_mean,sm,0.810,1",
    ]


def test_report_cli_errors_exit_2(tmp_path, capsys):
    write_doc(tmp_path, table_doc("A", "CoCA", {"sm": 0.5}))
    write_doc(tmp_path, table_doc("B", "CoCA", {"sm": 0.5}, protocol="eval-co-sod"))
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path)])
    assert info.value.code == 2
    assert "cosalbench: error: results use different protocols" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--by-group"])
    assert "--by-group needs --dataset" in capsys.readouterr().err
