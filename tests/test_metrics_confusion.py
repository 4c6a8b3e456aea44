"""FmeasureV2 measures (IoU, Dice, BER, Kappa, ...) against PySODMetrics 1.6.2 as the oracle, to 1e-9."""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm
import pytest

from cosalbench.metrics import confusion
from cosalbench.metrics.protocols import get_protocol

TOL = 1e-9
PROTOCOL = get_protocol("pysodmetrics")
HANDLER_CLASSES = {
    "fm": lambda **kw: psm.FmeasureHandler(beta=0.3, **kw),
    "pre": psm.PrecisionHandler,
    "rec": psm.RecallHandler,
    "sen": psm.SensitivityHandler,
    "spec": psm.SpecificityHandler,
    "fpr": psm.FPRHandler,
    "iou": psm.IOUHandler,
    "dice": psm.DICEHandler,
    "ber": psm.BERHandler,
    "oa": psm.OverallAccuracyHandler,
    "kappa": psm.KappaHandler,
}


def _maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """Random maps plus every degenerate case: empty GT, full GT, constant maps, all-zero prediction."""
    rng = np.random.default_rng(0)
    shape = (23, 31)
    blob = np.zeros(shape, np.uint8)
    blob[5:15, 8:20] = 255
    cases = [
        (np.zeros(shape, np.uint8), blob),  # all-zero prediction
        (np.full(shape, 77, np.uint8), blob),  # constant map
        (np.full(shape, 255, np.uint8), blob),
        (rng.integers(0, 256, shape).astype(np.uint8), np.zeros(shape, np.uint8)),  # empty GT
        (np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)),
        (rng.integers(0, 256, shape).astype(np.uint8), np.full(shape, 255, np.uint8)),  # full GT
        (np.full(shape, 200, np.uint8), np.full(shape, 255, np.uint8)),
        (blob.copy(), blob),  # perfect
    ]
    for _ in range(12):
        gt = np.where(rng.random(shape) < rng.uniform(0.05, 0.6), 255, 0).astype(np.uint8)
        pred = np.clip(gt * rng.uniform(0.3, 1) + rng.uniform(0, 120, shape), 0, 255).astype(np.uint8)
        cases.append((np.clip(pred, rng.integers(0, 60), rng.integers(150, 256)).astype(np.uint8), gt))
    return cases


def _oracle(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    handlers = {}
    for name, cls in HANDLER_CLASSES.items():
        handlers[name] = cls(with_dynamic=True, with_adaptive=True, with_binary=True, sample_based=True)
        handlers[f"overall_{name}"] = cls(
            with_dynamic=False, with_adaptive=False, with_binary=True, sample_based=False
        )
    metric = psm.FmeasureV2(handlers)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for pred, gt in pairs:
            metric.step(pred, gt)
        results = metric.get_results()
    values = {}
    for name in HANDLER_CLASSES:
        res = results[name]
        values |= {
            f"max{name}": float(res["dynamic"].max()),
            f"mean{name}": float(res["dynamic"].mean()),
            f"adp{name}": float(res["adaptive"]),
            f"sample_bi{name}": float(res["binary"]),
            f"overall_bi{name}": float(results[f"overall_{name}"]["binary"]),
        }
    return {key: values[key] for key in confusion.MEASURES}


def _ours(pairs, groups=None) -> dict[str, float]:
    handlers = confusion.handlers_of(confusion.MEASURES)
    rows = np.stack([PROTOCOL.score(pred, gt, confusion=handlers).confusion for pred, gt in pairs])
    return confusion.summarise(rows, confusion.MEASURES, len(PROTOCOL.thresholds), groups)


def test_every_measure_per_image_including_degenerate_cases() -> None:
    failures = []
    for index, pair in enumerate(_maps()):
        expected, ours = _oracle([pair]), _ours([pair])
        failures += [
            (index, key, ours[key], value) for key, value in expected.items() if abs(ours[key] - value) > TOL
        ]
    assert not failures, failures[:10]


def test_dataset_values_sample_and_whole_based() -> None:
    pairs = _maps()
    expected, ours = _oracle(pairs), _ours(pairs)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=TOL), key


def test_group_mean_is_the_mean_over_groups() -> None:
    pairs = _maps()
    groups = [f"g{i % 3}" for i in range(len(pairs))]
    ours = _ours(pairs, groups)
    per_group = [
        _oracle([p for p, g in zip(pairs, groups, strict=True) if g == name]) for name in ("g0", "g1", "g2")
    ]
    for key in ("adpiou", "sample_bidice", "overall_biiou", "overall_bikappa"):
        assert ours[key] == pytest.approx(np.mean([entry[key] for entry in per_group]), abs=TOL)


def test_names_and_protocols_without_them() -> None:
    assert confusion.parse_measures(["iou"]) == (
        "maxiou",
        "meaniou",
        "adpiou",
        "sample_biiou",
        "overall_biiou",
    )
    assert confusion.parse_measures(["fm"]) == ("sample_bifm", "overall_bifm")
    assert "maxfm" not in confusion.MEASURES and "overall_biiou" in confusion.MEASURES
    with pytest.raises(Exception, match="unknown measure"):
        confusion.parse_measures(["nope"])
    pred, gt = _maps()[-1]
    for name in ("eval-co-sod", "cosal-matlab"):
        assert get_protocol(name).score(pred, gt, confusion=("iou",)).confusion is None


def test_evaluate_metrics_option_writes_the_measures(tmp_path) -> None:
    from cosalbench import io, layout
    from cosalbench.cli import main
    from cosalbench.datasets import synth
    from cosalbench.metrics.evaluate import evaluate_predictions
    from cosalbench.metrics.results import CSV_COLUMNS

    spec = synth.SynthSpec(name="Tiny", n_groups=2, images_per_group=3, height=24, width=32, seed=1)
    data = synth.write_dataset(tmp_path / "data", spec)
    pairs, groups = [], []
    for sample in synth.generate(spec):
        pred = np.roll(sample.mask, 2, axis=1)
        io.write_png(
            layout.prediction_dir(tmp_path / "preds", "m", "Tiny") / sample.group / f"{sample.stem}.png", pred
        )
        pairs.append((pred, sample.mask))
        groups.append(sample.group)
    plain = evaluate_predictions(tmp_path / "preds", ["Tiny"], data_root=data, progress=False)[0]
    doc = evaluate_predictions(
        tmp_path / "preds", ["Tiny"], data_root=data, progress=False, measures=["iou", "sample_bidice"]
    )[0]
    names = ["maxiou", "meaniou", "adpiou", "sample_biiou", "overall_biiou", "sample_bidice"]
    assert list(doc["image_mean"]) == list(plain["image_mean"]) + names
    expected = _oracle(pairs)
    for name in names:
        assert doc["image_mean"][name] == pytest.approx(expected[name], abs=TOL)
    assert doc["group_mean"]["overall_biiou"] == pytest.approx(_ours(pairs, groups)["overall_biiou"], abs=TOL)
    assert main(
        [
            "evaluate",
            str(tmp_path / "preds"),
            "--dataset",
            "Tiny",
            "--data-root",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
            "--metrics",
            "kappa",
            "--protocol",
            "cosal-matlab",
        ]
    ) in (0, None)
    header = (tmp_path / "out" / "m" / "Tiny.images.csv").read_text().splitlines()[0].split(",")
    assert header == [*CSV_COLUMNS, "maxkappa", "meankappa", "adpkappa", "sample_bikappa", "overall_bikappa"]
    written = (tmp_path / "out" / "m" / "Tiny.json").read_text()
    assert '"overall_bikappa": null' in written  # not defined by the cosal-matlab reference
