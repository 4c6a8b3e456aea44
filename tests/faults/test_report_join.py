"""report over seeds, training sets and profiles: every ambiguous input refused in one line naming the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import assert_refused, cli, snapshot
from tests.report_provenance import seeded_doc, write_profile, write_seeded
from tests.test_report_docs import table_doc, write_doc


def refused(root: Path, *args: str | Path, fragments: tuple = ()) -> str:
    before = snapshot(root)
    line = assert_refused(cli("report", *args), *fragments)
    assert snapshot(root) == before
    return line


@pytest.mark.parametrize(
    ("first_seed", "second_seed", "problem"),
    [
        (None, None, "second result for method 'A' on CoCA (pysodmetrics); first: "),
        (0, 0, "second result for method 'A' on CoCA (pysodmetrics) with seed 0; first: "),
        (0, None, "one with a seed and one without; first: "),
    ],
    ids=["true-duplicate", "same-seed", "seeded-and-unseeded"],
)
def test_results_not_told_apart_by_seed_are_refused(tmp_path: Path, first_seed, second_seed, problem) -> None:
    first = write_doc(tmp_path / "one", seeded_doc("A", "CoCA", {"sm": 0.5}, first_seed))
    second = write_doc(tmp_path / "two", seeded_doc("A", "CoCA", {"sm": 0.6}, second_seed))
    line = refused(tmp_path, tmp_path / "one", tmp_path / "two", fragments=(second, first, problem))
    assert line.startswith(f"cosalbench: error: {second}: ")


def test_provenance_less_duplicates_keep_the_old_refusal(tmp_path: Path) -> None:
    first = write_doc(tmp_path / "one", table_doc("A", "CoCA", {"sm": 0.5}))
    second = write_doc(tmp_path / "two", table_doc("A", "CoCA", {"sm": 0.6}))
    refused(tmp_path, first, second, fragments=(second, f"first: {first}", "pass only one result per method"))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"provenance": {"recipe_sha256": "ff" * 32}}, "has provenance.recipe_sha256"),
        ({"provenance": {"train_sets": ["DUTS_class"]}}, "--group-by train_set"),
        ({"n_images": 7}, "seed 1 of method 'A' on CoCA (pysodmetrics) scored 7 images, seed 0 scored 2"),
    ],
    ids=["recipe", "train-set", "images"],
)
def test_seeds_of_different_setups_are_refused(tmp_path: Path, change: dict, problem: str) -> None:
    first = write_seeded(tmp_path / "res", seeded_doc("A", "CoCA", {"sm": 0.5}, 0))
    doc = seeded_doc("A", "CoCA", {"sm": 0.6}, 1)
    doc["provenance"].update(change.get("provenance", {}))
    doc["n_images"] = change.get("n_images", doc["n_images"])
    second = write_seeded(tmp_path / "res", doc)
    refused(tmp_path, tmp_path / "res", fragments=(second, first, problem))


def test_bad_provenance_is_named(tmp_path: Path) -> None:
    doc = seeded_doc("A", "CoCA", {"sm": 0.5}, 0)
    doc["provenance"]["input_size"] = "224"
    path = write_seeded(tmp_path / "res", doc)
    refused(tmp_path, tmp_path / "res", fragments=(path, "'provenance.input_size' is '224', not an integer"))


def test_seeds_with_by_group_thumbnails_and_misplaced_options(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_seeded(tmp_path / "res", seeded_doc("A", "CoCA", {"sm": 0.5}, seed))
    write_doc(tmp_path / "res", table_doc("B", "CoCA", {"sm": 0.5}))
    res = tmp_path / "res"
    refused(
        tmp_path, res, "--by-group", "--dataset", "CoCA", fragments=("compares two single runs", "seeds 0, 1")
    )
    (tmp_path / "preds").mkdir()
    first_seed = res / "seed0" / "A" / "CoCA.json"
    refused(tmp_path, res, "--format", "html", "--out", tmp_path / "r.html", "--pred-root", tmp_path / "preds",
            fragments=(first_seed, "2 results of A on CoCA", "omit --pred-root"))  # fmt: skip
    refused(tmp_path, res, "--by-group", "--dataset", "CoCA", "--group-by", "train_set",
            fragments=("--group-by shapes the methods table",))  # fmt: skip
    refused(
        tmp_path, res, "--profile-device", "cuda", fragments=("--profile-device chooses among --profile",)
    )
    second_seed = res / "seed1" / "A" / "CoCA.json"
    refused(tmp_path, res, "--explain", fragments=(second_seed, "--explain takes one run", "seeds 0, 1"))


def test_bad_or_ambiguous_profiles_are_refused(tmp_path: Path) -> None:
    res = tmp_path / "res"
    write_doc(res, table_doc("GCoNet", "CoCA", {"sm": 0.5}))
    write_doc(res, table_doc("RCGS", "CoCA", {"sm": 0.5}))
    result_file = res / "GCoNet" / "CoCA.json"
    refused(
        tmp_path, res, "--profile", result_file, fragments=(result_file, "not a cosalbench profile document")
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": "gconet", ')
    refused(tmp_path, res, "--profile", broken, fragments=(broken, "not valid JSON"))
    (tmp_path / "no-profiles").mkdir()
    refused(tmp_path, res, "--profile", tmp_path / "no-profiles", fragments=(tmp_path / "no-profiles", "no cosalbench profile"))  # fmt: skip
    bad = write_profile(tmp_path / "bad", "gconet", flops_per_group=1)
    refused(tmp_path, res, "--profile", bad, fragments=(bad, "'gflops_per_image'"))
    first = write_profile(tmp_path / "twice", "a")
    second = write_profile(tmp_path / "twice", "b")
    refused(tmp_path, res, "--profile", tmp_path / "twice", fragments=(second, first, "second profile of model 'gconet' on cuda:0"))  # fmt: skip
    cuda = write_profile(tmp_path / "mixed", "gconet")
    cpu = write_profile(tmp_path / "mixed", "rcgs", model="rcgs", device="cpu", device_name="x86_64")
    refused(tmp_path, res, "--profile", tmp_path / "mixed", fragments=(cuda, cpu, "different devices", "--profile-device"))  # fmt: skip
    refused(tmp_path, res, "--profile", cuda, "--profile-device", "cpu", fragments=("no profile was measured on 'cpu'", "cuda:0 (NVIDIA H200)"))  # fmt: skip
