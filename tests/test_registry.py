"""The dataset registry and the ``cosalbench datasets`` table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cosalbench.cli import cli
from cosalbench.datasets import registry, validate
from cosalbench.datasets.standardize import standardize_dataset
from tests.test_standardize_fakes import MAKERS, make_clean

EXPECTED = {  # name: (groups, images, kind), from datasets-facts §2.1
    "CoCA": (80, 1295, "test"),
    "CoSOD3k": (160, 3316, "test"),
    "CoSal2015": (50, 2015, "test"),
    "iCoseg": (38, 643, "test"),
    "MSRC": (7, 233, "test"),
    "DUTS_class": (291, 8250, "train"),
    "COCO9213": (None, 9213, "train"),
    "COCO-SEG": (78, 200932, "train"),
    "COCO-SEG-val": (None, None, "test"),
}


def test_registry_holds_the_public_sets() -> None:
    infos = registry.all_datasets()
    assert [i.name for i in infos] == list(EXPECTED)
    for info in infos:
        assert (info.expected_groups, info.expected_images, info.kind) == EXPECTED[info.name]
        assert all(len(pair) == 2 for pair in info.layouts)
    assert registry.lookup("MSRC").count_notes.startswith("some sources count 210")
    assert registry.lookup("CoCA").layouts == (("image", "binary"),)
    assert registry.lookup("CoSOD3k").layouts == (("Image", "GroundTruth"),)
    assert ("img_bilinear_224", "gt_bilinear_224") in registry.lookup("COCO9213").layouts


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("CoCA", "CoCA"),
        ("coca", "CoCA"),
        ("Cosal2015", "CoSal2015"),
        ("cosal2015", "CoSal2015"),
        ("coco-seg", "COCO-SEG"),
        ("COCO-SEG-VAL", "COCO-SEG-val"),
        ("coco-9k", "COCO9213"),
        ("COCO-9213", "COCO9213"),
        ("iCoSeg", "iCoseg"),
        ("duts_class", "DUTS_class"),
        (" CoSOD3K ", "CoSOD3k"),
    ],
)
def test_lookup_resolves_names_and_aliases(spelling: str, name: str) -> None:
    info = registry.lookup(spelling)
    assert info is not None and info.name == name
    assert registry.canonical_name(spelling) == name


def test_unknown_names_and_alias_uniqueness() -> None:
    assert registry.lookup("Synth") is None and registry.canonical_name("Synth") == "Synth"
    owners: dict[str, set[str]] = {}
    for info in registry.all_datasets():
        for spelling in info.spellings():
            owners.setdefault(spelling.casefold(), set()).add(info.name)
    assert all(len(names) == 1 for names in owners.values())  # no spelling names two datasets


def test_datasets_table(tmp_path: Path, synth_root: Path) -> None:
    root = tmp_path / "data"
    standardize_dataset("CoCA", MAKERS["CoCA"](tmp_path / "coca").src, root, progress=False)
    standardize_dataset("Mine", make_clean(tmp_path / "mine", "Mine").src, root, progress=False)
    (root / "gts" / "Cosal2015" / "car").mkdir(parents=True)  # an un-standardized copy, alias spelling
    (root / "gts" / "Cosal2015" / "car" / "a.png").write_bytes(b"")
    runner = CliRunner()
    result = runner.invoke(cli, ["datasets", "--data-root", str(root), "--json"])
    assert result.exit_code == 0, result.output
    table = {e["name"]: e for e in json.loads(result.output)}
    assert list(table) == [*EXPECTED, "Mine"]
    assert (table["CoCA"]["status"], table["CoCA"]["images"], table["CoCA"]["groups"]) == (
        "usable with warnings",
        6,
        3,
    )
    assert (table["Mine"]["status"], table["Mine"]["images"]) == ("complete", 6)
    assert (table["CoSal2015"]["folder"], table["CoSal2015"]["status"]) == (
        "Cosal2015",
        "present (not standardized)",
    )
    assert (table["CoSal2015"]["groups"], table["CoSal2015"]["images"]) == (1, 1)
    assert table["MSRC"]["status"] == "missing" and table["MSRC"]["images"] is None
    text = runner.invoke(cli, ["datasets", "--data-root", str(root)]).output.splitlines()
    assert text[0].split() == ["dataset", "aliases", "kind", "groups", "images", "status", "found"]
    coca = next(line for line in text if line.startswith("CoCA "))
    assert "1,295" in coca and "usable with warnings" in coca and "6 in 3 groups" in coca
    synth = runner.invoke(cli, ["datasets", "--data-root", str(synth_root), "--json"])
    entry = json.loads(synth.output)[-1]
    assert (entry["name"], entry["status"], entry["images"], entry["groups"]) == (
        "Synth",
        "present (no report)",
        24,
        4,
    )


def test_datasets_table_reads_a_build_coco_seg_report(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "COCO-SEG.report.json").write_text(
        json.dumps({"n_groups": 78, "n_pairs": 200932, "dry_run": False})
    )
    (manifests / "COCO-SEG-val.report.json").write_text(
        json.dumps({"n_groups": 78, "n_pairs": 8400, "dry_run": True})
    )
    table = {e["name"]: e for e in validate.status_table(tmp_path)}
    assert (table["COCO-SEG"]["status"], table["COCO-SEG"]["images"], table["COCO-SEG"]["groups"]) == (
        "built",
        200932,
        78,
    )
    assert table["COCO-SEG-val"]["status"] == "listed only (dry run)"
