"""Planning an evaluation: dataset names, PRED layouts, (group, stem) pairing, missing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosalbench import io, layout
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.evaluate import plan_evaluation
from cosalbench.metrics.ground_truth import load_ground_truth, png_problem

MASK = np.zeros((8, 10), np.uint8)
MASK[2:6, 3:7] = 255


def _touch(path: Path) -> Path:
    """Write a tiny valid PNG (pairing never decodes, but keep the files real)."""
    io.write_bytes(path, io.encode_image(MASK, ".png"))
    return path


def _gt_set(root: Path, dataset: str, keys: list[tuple[str, str]]) -> Path:
    for group, stem in keys:
        _touch(root / "gts" / dataset / group / f"{stem}.png")
    return root


KEYS = [("blue disc", "0000"), ("blue disc", "0001"), ("red star", "0000"), ("red star", "0001")]


def test_pairs_any_extension_and_case_keyed_by_group_and_stem(tmp_path: Path) -> None:
    data = _gt_set(tmp_path / "data", "Toy", KEYS)
    method = tmp_path / "preds" / "mine" / "Toy"
    _touch(method / "blue disc" / "0000.PNG")
    _touch(method / "blue disc" / "0001.jpg")
    _touch(method / "red star" / "0000.Jpeg")
    _touch(method / "red star" / "0001.bmp")
    _touch(method / "red star" / "Thumbs.db")
    plan = plan_evaluation(tmp_path / "preds" / "mine", ["Toy"], data)
    (job,) = plan.jobs
    assert (job.method, job.dataset, job.missing) == ("mine", "Toy", [])
    assert [(p.group, p.stem, p.pred.name) for p in job.pairs] == [
        ("blue disc", "0000", "0000.PNG"),
        ("blue disc", "0001", "0001.jpg"),
        ("red star", "0000", "0000.Jpeg"),
        ("red star", "0001", "0001.bmp"),
    ]
    # the same stem in two groups pairs with its own group's file
    assert job.pairs[0].pred.parent.name == "blue disc" and job.pairs[2].pred.parent.name == "red star"
    assert all(p.gt.parent.name == p.group and p.gt.stem == p.stem for p in job.pairs)


def test_missing_predictions_listed_and_strict_fails(tmp_path: Path) -> None:
    data = _gt_set(tmp_path / "data", "Toy", KEYS)
    method = tmp_path / "m" / "Toy"
    _touch(method / "blue disc" / "0000.png")
    _touch(method / "red star" / "0001.png")
    _touch(method / "red star" / "extra.png")  # not in the GT: ignored
    (job,) = plan_evaluation(tmp_path / "m", ["Toy"], data).jobs
    assert job.missing == ["blue disc/0001", "red star/0000"]
    assert [(p.group, p.stem) for p in job.pairs] == [("blue disc", "0000"), ("red star", "0001")]
    with pytest.raises(CosalbenchError, match=r"2 of 4 missing") as info:
        plan_evaluation(tmp_path / "m", ["Toy"], data, strict=True)
    assert info.value.path.endswith("0001.png")


def test_folder_of_methods_and_dataset_alias(tmp_path: Path) -> None:
    data = _gt_set(tmp_path / "data", "CoSal2015", KEYS[:1])
    _gt_set(tmp_path / "data", "Toy", KEYS[:1])
    preds = tmp_path / "preds"
    _touch(preds / "b_method" / "Cosal2015" / "blue disc" / "0000.png")  # alias spelling of the folder
    _touch(preds / "a_method" / "CoSal2015" / "blue disc" / "0000.png")
    _touch(preds / "a_method" / "Toy" / "blue disc" / "0000.png")
    (preds / "notes").mkdir()
    # one CoSal2015 mask of the registry's 2,015: allowed explicitly
    plan = plan_evaluation(preds, ["cosal2015", "Toy"], data, allow_incomplete_gt=True)
    assert [(j.method, j.dataset, j.pred_dir.name) for j in plan.jobs] == [
        ("a_method", "CoSal2015", "CoSal2015"),
        ("a_method", "Toy", "Toy"),
        ("b_method", "CoSal2015", "Cosal2015"),
    ]
    assert plan.skipped == ["b_method/Toy"]
    with pytest.raises(CosalbenchError, match="prediction folder not found"):
        plan_evaluation(preds, ["CoSal2015", "Toy"], data, strict=True, allow_incomplete_gt=True)


@pytest.mark.parametrize(
    ("make", "datasets", "message"),
    [
        (
            lambda p: _touch(p / "m" / "Toy" / "blue disc" / "0000.png"),
            ["NoSuchSet"],
            "unknown dataset 'NoSuchSet'",
        ),
        (lambda p: _touch(p / "m" / "CoCA" / "g" / "0000.png"), ["CoCA"], "ground-truth folder not found"),
        (lambda p: (p / "m" / "Toy" / "blue disc").mkdir(parents=True), ["Toy"], "holds no images"),
        (lambda p: _touch(p / "m" / "Toy" / "0000.png"), ["Toy"], "not in group sub-folders"),
        (lambda p: _touch(p / "m" / "Toy" / "other" / "0000.png"), ["Toy"], "no prediction matches"),
        (lambda p: _touch(p / "m" / "Other" / "g" / "0000.png"), ["Toy"], "holds no prediction folder"),
    ],
)
def test_bad_inputs_raise_one_line_errors_naming_a_path(tmp_path: Path, make, datasets, message) -> None:
    data = _gt_set(tmp_path / "data", "Toy", KEYS)
    make(tmp_path)
    with pytest.raises(CosalbenchError, match=message) as info:
        plan_evaluation(tmp_path / "m", datasets, data)
    assert info.value.path and "\n" not in str(info.value)


def test_unknown_dataset_error_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(CosalbenchError, match="CoCA.*CoSOD3k") as info:
        plan_evaluation(tmp_path, ["Nope"], tmp_path)
    assert info.value.path == str(tmp_path / "gts" / "Nope")


def test_scan_images_sorts_entries_into_usable_duplicate_and_unreadable(tmp_path: Path) -> None:
    group = tmp_path / "g"
    _touch(group / "0000.png")
    _touch(group / "0001.png")
    _touch(group / "0001.jpg")  # a photo beside its map
    (group / "0002.png").symlink_to(tmp_path / "gone.png")
    (group / "0003.png").mkdir()
    (group / "0004.png").write_bytes(b"")
    (group / "notes.txt").write_text("not an image")
    listing = layout.scan_images(group)
    assert listing.files == {"0000": group / "0000.png"}
    assert listing.duplicates == {"0001": [group / "0001.jpg", group / "0001.png"]}
    assert {stem: why for stem, (_, why) in listing.unreadable.items()} == {
        "0002": f"broken symbolic link (-> {tmp_path / 'gone.png'})",
        "0003": "is a folder, not a file",
        "0004": "is empty (0 bytes)",
    }
    # list_images (used by other commands) keeps its rule: first regular file in extension order
    assert layout.list_images(group) == {
        "0000": group / "0000.png",
        "0001": group / "0001.jpg",
        "0004": group / "0004.png",
    }
    assert layout.scan_images(group, (".png",)).files == {
        "0000": group / "0000.png",
        "0001": group / "0001.png",
    }


@pytest.mark.parametrize(
    ("name", "plain"), [("Demo", "Demo"), ("Demo/", "Demo"), ("CoSal 2015", "CoSal 2015")]
)
def test_plain_names_are_kept_without_trailing_slashes(name: str, plain: str) -> None:
    assert layout.plain_name(name) == plain


@pytest.mark.parametrize("name", ["", "/", ".", "..", "../x", "a/b", "a\\b", ".hidden", "tab\there"])
def test_names_that_are_not_plain_folder_names_are_refused(name: str) -> None:
    with pytest.raises(CosalbenchError, match="not a plain folder name"):
        layout.plain_name(name, "dataset")


def test_png_check_accepts_readable_files_and_names_truncated_ones(tmp_path: Path) -> None:
    good = _touch(tmp_path / "good.png")
    assert png_problem(good) is None
    trailing = tmp_path / "trailing.png"
    trailing.write_bytes(good.read_bytes() + b"junk after IEND")  # decodes: accepted
    assert png_problem(trailing) is None
    jpeg = tmp_path / "misnamed.png"
    jpeg.write_bytes(io.encode_image(MASK, ".jpg"))
    assert png_problem(jpeg) is None
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-20])
    assert png_problem(truncated) == "not a readable image (corrupt or unsupported format)"


def test_unknown_set_without_manifest_checks_readability_only(tmp_path: Path) -> None:
    data = _gt_set(tmp_path / "data", "Toy", KEYS)
    gt = load_ground_truth(data, "Toy")
    assert (gt.reference, gt.expected, gt.complete, len(gt.items)) == ("none", 4, True, 4)
    (data / "gts" / "Toy" / "red star" / "0001.png").unlink()
    (data / "gts" / "Toy" / "red star" / "0001.png").symlink_to(tmp_path / "gone")
    gt = load_ground_truth(data, "Toy")
    assert (gt.expected, len(gt.items), gt.unreadable) == (
        4,
        3,
        [f"red star/0001.png (broken symbolic link (-> {tmp_path / 'gone'}))"],
    )
    with pytest.raises(CosalbenchError, match=r"3 of 4 expected masks usable.*red star/0001.png") as info:
        plan_evaluation(tmp_path / "m", ["Toy"], data)
    assert info.value.path == str(data / "gts" / "Toy")
    _touch(tmp_path / "m" / "Toy" / "red star" / "0000.png")
    (job,) = plan_evaluation(tmp_path / "m", ["Toy"], data, allow_incomplete_gt=True).jobs
    assert job.gt_fields["gt_complete"] is False and len(job.pairs) == 1 and len(job.missing) == 2
