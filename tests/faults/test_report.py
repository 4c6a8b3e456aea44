"""report, plot and compare on bad result files and bad outputs: one line naming the path, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cosalbench import io
from cosalbench.metrics.evaluate import evaluate_predictions
from tests.faults.conftest import assert_refused, cli, snapshot


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """``res/<method>/Synth.json`` of methods ``a`` (the GT) and ``b`` (the GT, dimmed), pysodmetrics."""
    root = tmp_path_factory.mktemp("results")
    gts = synth_root / "gts" / "Synth"
    for method in ("a", "b"):
        shutil.copytree(gts, root / "pred" / method / "Synth")
    for mask in (root / "pred" / "b" / "Synth").rglob("*.png"):
        io.write_png(mask, (io.read_gray(mask) * 0.7).astype("uint8"))
    evaluate_predictions(
        root / "pred", ["Synth"], data_root=synth_root, out=root / "res", workers=1, progress=False
    )
    return root / "res"


@pytest.fixture
def work(tmp_path: Path, results: Path) -> Path:
    """A private copy of the results to damage."""
    shutil.copytree(results, tmp_path / "res")
    return tmp_path / "res"


def refused_without_change(root: Path, *args: str | Path, fragments: tuple = ()) -> str:
    """Run the CLI, assert the one-line refusal naming ``fragments`` and that ``root`` is unchanged."""
    before = snapshot(root)
    result = cli(*args)
    line = assert_refused(result, *fragments)
    assert snapshot(root) == before
    return line


@pytest.mark.parametrize("command", ["report", "plot"])
def test_a_broken_link_in_a_results_folder_is_named(work: Path, tmp_path: Path, command: str) -> None:
    os.symlink(tmp_path / "moved-away.json", work / "a" / "CoCA.json")
    refused_without_change(
        tmp_path, command, work, fragments=(work / "a" / "CoCA.json", "broken symbolic link")
    )


def test_a_folder_named_like_a_result_is_named(work: Path, tmp_path: Path) -> None:
    (work / "a" / "CoCA.json").mkdir()
    refused_without_change(
        tmp_path, "report", work, fragments=(work / "a" / "CoCA.json", "not a regular file")
    )


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe{\x00", "not a UTF-8 text file"),
        (b'{"cosalbench": "0.1.0", "method": "a", "dat', "not valid JSON (line 1"),
        (b"method,dataset\na,Synth\n", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"method": "a"}', "not a cosalbench result document"),
        (b'{"cosalbench": "0.1.0", "method": "a", "dataset": "Synth", "protocol": "pysodmetrics"}', "lacks"),
    ],
    ids=["non-utf8", "truncated", "csv", "empty", "other-json", "incomplete"],
)
@pytest.mark.parametrize("command", ["report", "plot", "compare"])
def test_unreadable_result_files_are_named(
    work: Path, tmp_path: Path, content: bytes, problem: str, command: str
):
    bad = work / "a" / "Synth.json"
    bad.write_bytes(content)
    args = [bad, work / "b" / "Synth.json"] if command == "compare" else [bad]
    refused_without_change(tmp_path, command, *args, fragments=(bad, problem))


def test_a_damaged_file_inside_a_folder_is_named_not_skipped(work: Path, tmp_path: Path) -> None:
    (work / "b" / "Synth.json").write_bytes((work / "b" / "Synth.json").read_bytes()[:200])
    refused_without_change(tmp_path, "report", work, fragments=(work / "b" / "Synth.json", "not valid JSON"))


def _other_protocol(work: Path) -> Path:
    doc = json.loads((work / "b" / "Synth.json").read_text())
    doc["protocol"] = "eval-co-sod"
    other = work / "other" / "Synth.json"
    other.parent.mkdir()
    other.write_text(json.dumps(doc))
    return other


def test_results_of_different_protocols_are_refused(work: Path, tmp_path: Path) -> None:
    other = _other_protocol(work)
    refused_without_change(tmp_path, "report", work / "a", other, fragments=(other, "different protocols"))
    refused_without_change(
        tmp_path, "compare", work / "a" / "Synth.json", other, fragments=(other, "protocol differs")
    )


def test_missing_and_empty_inputs_are_one_line(work: Path, tmp_path: Path) -> None:
    refused_without_change(tmp_path, "report", work / "nothing.json", fragments=(work / "nothing.json",))
    (tmp_path / "empty").mkdir()
    refused_without_change(
        tmp_path, "report", tmp_path / "empty", fragments=(tmp_path / "empty", "no cosalbench")
    )
    refused_without_change(tmp_path, "report", fragments=("Missing argument",))


def test_out_that_is_a_folder_or_below_a_file_is_refused(work: Path, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    refused_without_change(tmp_path, "report", work, "--out", tmp_path / "folder", fragments=("folder",))
    (tmp_path / "a-file").write_text("keep me")
    refused_without_change(
        tmp_path, "plot", work, "--out", tmp_path / "a-file" / "c.png", fragments=(tmp_path / "a-file",)
    )
    refused_without_change(tmp_path, "plot", work, "--out", tmp_path / "c.svg", fragments=("c.svg", "format"))


def test_full_disk_leaves_no_partial_output(work: Path, filled_disk: Path) -> None:
    cases = [
        ("report", work, "--out", filled_disk / "table.md"),
        ("plot", work, "--out", filled_disk / "curves.png"),
        ("compare", work / "a", work / "b", "--out", filled_disk / "cmp.txt"),
        ("compare", work / "a", work / "b", "--figure", filled_disk / "groups.png", "--n-boot", "10"),
    ]
    for args in cases:
        target = args[-1] if args[0] != "compare" or "--figure" not in args else filled_disk / "groups.png"
        refused_without_change(filled_disk, *args, fragments=(target, "No space left on device"))


def test_a_printout_that_cannot_be_written_takes_the_figure_with_it(
    work: Path, tmp_path: Path, read_only: Path
) -> None:
    refused_without_change(
        tmp_path,
        "compare",
        work / "a",
        work / "b",
        "--figure",
        tmp_path / "groups.png",
        "--out",
        read_only / "cmp.txt",
        fragments=(read_only / "cmp.txt", "Read-only file system"),
    )


def test_read_only_output_is_named(work: Path, read_only: Path) -> None:
    for command in ("report", "plot"):
        out = read_only / ("t.md" if command == "report" else "c.png")
        refused_without_change(
            read_only, command, work, "--out", out, fragments=(out, "Read-only file system")
        )


def test_a_hostile_dataset_name_does_not_choose_where_plot_writes(work: Path, tmp_path: Path) -> None:
    path = work / "a" / "Synth.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "dataset": "../../escaped"}))
    cwd = tmp_path / "one" / "two"
    cwd.mkdir(parents=True)
    before = snapshot(tmp_path)
    result = cli("plot", path, cwd=cwd)
    assert_refused(result, path, "not a plain file name")
    assert snapshot(tmp_path) == before


def test_a_metric_that_was_not_computed_is_named_as_such(work: Path, tmp_path: Path) -> None:
    line = refused_without_change(
        tmp_path,
        "compare",
        work / "a",
        work / "b",
        "--metrics",
        "wfm",
        fragments=(work / "a" / "Synth.json",),
    )
    assert "wfm was not computed for a (rerun 'cosalbench evaluate' with --wfm)" in line
