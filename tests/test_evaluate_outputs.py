"""Scoring and outputs of ``evaluate``: documents, CSVs, aggregation, determinism, conversions, CLI."""

from __future__ import annotations

import csv
import json
import math
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cosalbench import io, layout
from cosalbench.cli import main
from cosalbench.datasets import synth
from cosalbench.errors import CosalbenchError
from cosalbench.metrics.evaluate import evaluate_predictions
from cosalbench.metrics.protocols import CURVE_KEYS, SCALAR_KEYS, get_protocol

SPEC = synth.SynthSpec(name="Tiny", n_groups=3, images_per_group=4, height=48, width=64, seed=3)
DROPPED = ("{0}/0001", "{0}/0003", "{1}/0002")  # missing predictions of method "soft" (uneven groups)
CONTRACT_KEYS = [
    "cosalbench",
    "method",
    "dataset",
    "protocol",
    "n_images",
    "n_groups",
    "missing_predictions",
    "nan_images",
    "image_mean",
    "group_mean",
    "curves",
    "groups",
    "images_csv",
    "gt_complete",
    "gt_check",
]


def _soft(mask: np.ndarray) -> np.ndarray:
    """A deterministic imperfect prediction: blurred, shifted GT."""
    blurred = cv2.GaussianBlur(mask, (0, 0), sigmaX=3)
    return np.roll(blurred, 3, axis=1)


def _strict_json(path: Path) -> dict:
    def reject(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Data root, two methods ("soft" with 3 missing maps, "sharp"), evaluated into ``out``."""
    root = tmp_path_factory.mktemp("tiny")
    data = synth.write_dataset(root / "data", SPEC)
    groups = sorted(synth.group_categories(SPEC))
    dropped = {key.format(*groups) for key in DROPPED}
    for sample in synth.generate(SPEC):
        key = f"{sample.group}/{sample.stem}"
        if key not in dropped:
            io.write_png(
                layout.prediction_dir(root / "preds", "soft", "Tiny") / f"{key}.png", _soft(sample.mask)
            )
        sharp = cv2.GaussianBlur(sample.mask, (0, 0), sigmaX=1)
        io.write_png(layout.prediction_dir(root / "preds", "sharp", "Tiny") / f"{key}.png", sharp)
    docs = evaluate_predictions(root / "preds", ["Tiny"], data_root=data, out=root / "out", progress=False)
    return {"root": root, "data": data, "docs": docs, "dropped": sorted(dropped)}


def test_documents_have_exactly_the_contract_keys(tiny: dict) -> None:
    assert [(d["method"], d["dataset"]) for d in tiny["docs"]] == [("sharp", "Tiny"), ("soft", "Tiny")]
    for doc in tiny["docs"]:
        on_disk = _strict_json(tiny["root"] / "out" / doc["method"] / "Tiny.json")
        assert on_disk == json.loads(json.dumps(doc))
        assert list(doc) == CONTRACT_KEYS
        assert doc["protocol"] == "pysodmetrics" and doc["images_csv"] == "Tiny.images.csv"
        assert list(doc["image_mean"]) == list(doc["group_mean"]) == list(SCALAR_KEYS)
        assert doc["image_mean"]["wfm"] is None and doc["nan_images"] == {}
        for aggregation in ("image_mean", "group_mean"):
            curves = doc["curves"][aggregation]
            assert list(curves) == ["threshold", *CURVE_KEYS]
            assert np.all(np.diff(curves["threshold"]) > 0)
            assert {len(v) for v in curves.values()} == {len(get_protocol("pysodmetrics").thresholds)}
        assert doc["n_groups"] == len(doc["groups"]) == SPEC.n_groups
        for entry in doc["groups"].values():
            assert list(entry) == ["n_images", "metrics", "curves"]
            assert list(entry["metrics"]) == list(SCALAR_KEYS) and list(entry["curves"]) == list(CURVE_KEYS)


def test_missing_predictions_are_listed_and_counted(tiny: dict) -> None:
    sharp, soft = tiny["docs"]
    total = SPEC.n_groups * SPEC.images_per_group
    assert sharp["missing_predictions"] == [] and sharp["n_images"] == total
    assert soft["missing_predictions"] == tiny["dropped"] and soft["n_images"] == total - len(tiny["dropped"])
    assert sorted(entry["n_images"] for entry in soft["groups"].values()) == [2, 3, 4]


def test_aggregations_agree_with_the_per_image_csv(tiny: dict) -> None:
    doc = tiny["docs"][1]
    rows = _read_csv(tiny["root"] / "out" / "soft" / "Tiny.images.csv")
    assert list(rows[0]) == ["group", "stem", *SCALAR_KEYS]
    assert len(rows) == doc["n_images"] and all(row["wfm"] == "" for row in rows)
    groups = sorted({row["group"] for row in rows})
    for key in ("sm", "mae", "adpem", "adpfm"):
        values = np.array([float(row[key]) for row in rows])
        per_group = [np.mean([float(r[key]) for r in rows if r["group"] == g]) for g in groups]
        assert doc["image_mean"][key] == pytest.approx(values.mean(), abs=1e-12)
        assert doc["group_mean"][key] == pytest.approx(np.mean(per_group), abs=1e-12)
        assert doc["groups"][groups[0]]["metrics"][key] == pytest.approx(per_group[0], abs=1e-12)
    # curves re-aggregate exactly from the per-group curves (contract 5)
    n = np.array([doc["groups"][g]["n_images"] for g in groups], float)
    fm = np.array([doc["groups"][g]["curves"]["fm"] for g in groups])
    np.testing.assert_allclose(doc["curves"]["image_mean"]["fm"], n @ fm / n.sum(), atol=1e-12)
    np.testing.assert_allclose(doc["curves"]["group_mean"]["fm"], fm.mean(axis=0), atol=1e-12)
    assert doc["image_mean"]["maxfm"] == pytest.approx(max(doc["curves"]["image_mean"]["fm"]), abs=1e-12)
    assert doc["group_mean"]["meanem"] == pytest.approx(np.mean(doc["curves"]["group_mean"]["em"]), abs=1e-12)
    assert doc["image_mean"]["sm"] != pytest.approx(doc["group_mean"]["sm"], abs=1e-9)  # uneven groups


def test_workers_and_reruns_write_identical_bytes(tiny: dict, tmp_path: Path) -> None:
    root = tiny["root"]
    for workers, out in ((2, tmp_path / "w2"), (1, tmp_path / "again")):
        evaluate_predictions(
            root / "preds", ["Tiny"], data_root=tiny["data"], out=out, workers=workers, progress=False
        )
        for method in ("sharp", "soft"):
            for name in ("Tiny.json", "Tiny.images.csv"):
                assert (out / method / name).read_bytes() == (root / "out" / method / name).read_bytes()


def test_prediction_formats_and_sizes_are_converted(tiny: dict, tmp_path: Path) -> None:
    samples = [s for s in synth.generate(SPEC)][:4]
    preds = tmp_path / "preds"
    for sample in samples:
        grey = _soft(sample.mask)
        name = f"{sample.group}/{sample.stem}.png"
        folder = {
            m: layout.prediction_dir(preds, m, "Tiny") / name for m in ("grey", "rgb", "u16", "palette")
        }
        io.write_png(folder["grey"], grey)
        io.write_png(folder["rgb"], cv2.merge([grey, grey, grey]))
        io.write_png(folder["u16"], grey.astype(np.uint16) * 257)
        folder["palette"].parent.mkdir(parents=True, exist_ok=True)
        palette = Image.fromarray(grey).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
        palette.putpalette([v for level in range(256) for v in (level, level, level)])
        Image.fromarray(grey).quantize(palette=palette, dither=Image.Dither.NONE).save(folder["palette"])
        small = cv2.resize(grey, (SPEC.width // 2, SPEC.height // 2), interpolation=cv2.INTER_AREA)
        io.write_png(layout.prediction_dir(preds, "small", "Tiny") / name, small)
    docs = evaluate_predictions(preds, ["Tiny"], data_root=tiny["data"], out=tmp_path / "out", progress=False)
    csvs = {doc["method"]: (tmp_path / "out" / doc["method"] / "Tiny.images.csv").read_text() for doc in docs}
    assert csvs["rgb"] == csvs["grey"] and csvs["u16"] == csvs["grey"] and csvs["palette"] == csvs["grey"]
    # a map at another size is resized by the protocol's reader to the GT size, then scored
    protocol = get_protocol("pysodmetrics")
    rows = _read_csv(tmp_path / "out" / "small" / "Tiny.images.csv")
    for sample, row in zip(samples, rows, strict=True):
        gt = protocol.read_gt(layout.gts_dir(tiny["data"], "Tiny") / sample.group / f"{sample.stem}.png")
        pred = protocol.read_pred(
            layout.prediction_dir(preds, "small", "Tiny") / sample.group / f"{sample.stem}.png", gt.shape[:2]
        )
        expected = protocol.score(pred, gt).scalars
        assert (row["group"], row["stem"]) == (sample.group, sample.stem)
        assert float(row["sm"]) == expected["sm"] and float(row["mae"]) == expected["mae"]


def test_corrupt_prediction_fails_and_writes_nothing(tiny: dict, tmp_path: Path, capsys) -> None:
    preds = tmp_path / "preds"
    shutil.copytree(tiny["root"] / "preds" / "sharp", preds / "sharp")
    bad = sorted((preds / "sharp" / "Tiny").rglob("*.png"))[5]
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(CosalbenchError) as info:
        evaluate_predictions(
            preds, ["Tiny"], data_root=tiny["data"], out=tmp_path / "out", workers=2, progress=False
        )
    assert info.value.path == str(bad)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "evaluate",
                str(preds),
                "--dataset",
                "Tiny",
                "--data-root",
                str(tiny["data"]),
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cosalbench: error: ") and str(bad) in err
    assert not (tmp_path / "o").exists()


def test_cli_prints_table_json_and_exit_codes(tiny: dict, tmp_path: Path, capsys) -> None:
    args = [str(tiny["root"] / "preds" / "soft"), "--dataset", "tiny", "--data-root", str(tiny["data"])]
    main(["evaluate", *args, "--out", str(tmp_path / "a")])
    text = capsys.readouterr().out
    assert "Tiny -- protocol pysodmetrics" in text and "image_mean*" in text and "group_mean" in text
    assert "soft/Tiny: 3 of 12 predictions missing" in text
    assert (tmp_path / "a" / "soft" / "Tiny.json").read_bytes() == (
        tiny["root"] / "out" / "soft" / "Tiny.json"
    ).read_bytes()
    main(["evaluate", *args, "--out", str(tmp_path / "b"), "--json", "--protocol", "cosal-matlab"])
    (doc,) = json.loads(capsys.readouterr().out)
    assert (doc["method"], doc["protocol"]) == ("soft", "cosal-matlab")
    with pytest.raises(SystemExit) as info:
        main(["evaluate", *args, "--strict", "--out", str(tmp_path / "c")])
    assert info.value.code == 2 and not (tmp_path / "c").exists()


def test_nan_images_are_named_and_json_stays_strict(tmp_path: Path) -> None:
    gt = np.zeros((20, 30), np.uint8)
    gt[19, 29] = 255  # one foreground pixel in the corner: an empty S-measure quadrant -> NaN
    ok = np.zeros((20, 30), np.uint8)
    ok[5:12, 8:20] = 255
    for stem, mask in (("corner", gt), ("fine", ok)):
        io.write_png(tmp_path / "data" / "gts" / "Odd" / "g 1" / f"{stem}.png", mask)
        io.write_png(tmp_path / "preds" / "Odd" / "g 1" / f"{stem}.png", cv2.GaussianBlur(mask, (5, 5), 0))
    (doc,) = evaluate_predictions(
        tmp_path / "preds", ["Odd"], data_root=tmp_path / "data", out=tmp_path / "out", progress=False
    )
    assert doc["method"] == "preds"
    assert doc["nan_images"] == {"sm": ["g 1/corner"]}
    assert doc["image_mean"]["sm"] is None and doc["image_mean"]["mae"] is not None
    assert _strict_json(tmp_path / "out" / "preds" / "Odd.json")["nan_images"] == {"sm": ["g 1/corner"]}
    rows = _read_csv(tmp_path / "out" / "preds" / "Odd.images.csv")
    assert [row["sm"] for row in rows][0] == "NaN" and math.isfinite(float(rows[1]["sm"]))


def test_matches_pysodmetrics_computed_independently(tiny: dict) -> None:
    psm = pytest.importorskip("py_sod_metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure is deprecated in favour of FmeasureV2
        mae, sm, fm = psm.MAE(), psm.Smeasure(), psm.Fmeasure()
    gts = layout.gts_dir(tiny["data"], "Tiny")
    preds = tiny["root"] / "preds" / "soft" / "Tiny"
    for gt_path in sorted(gts.rglob("*.png")):
        pred_path = preds / gt_path.relative_to(gts)
        if pred_path.exists():
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            pred = cv2.imread(str(pred_path), cv2.IMREAD_GRAYSCALE)
            for metric in (mae, sm, fm):
                metric.step(pred, gt)
    doc = tiny["docs"][1]
    assert doc["image_mean"]["mae"] == pytest.approx(mae.get_results()["mae"], abs=1e-9)
    assert doc["image_mean"]["sm"] == pytest.approx(sm.get_results()["sm"], abs=1e-9)
    assert doc["image_mean"]["maxfm"] == pytest.approx(fm.get_results()["fm"]["curve"].max(), abs=1e-9)
