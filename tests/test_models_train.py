"""The shared trainer and predictor end to end on the smoke recipe (CPU, synthetic data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosalbench import io  # noqa: E402
from cosalbench.cli import main  # noqa: E402
from reference_models import recipes, schema  # noqa: E402

SMOKE = str(Path(__file__).resolve().parents[1] / "recipes" / "gconet-smoke.yaml")


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "gconet"
    main(["train-reference", "gconet", "--recipe", SMOKE, "--out", str(run), "--quiet"])
    return run


def test_smoke_training_lowers_the_loss(smoke_run: Path) -> None:
    log = read_log(smoke_run)
    assert [r["step"] for r in log] == list(range(1, 91))
    first = np.mean([r["loss"] for r in log[:15]])
    last = np.mean([r["loss"] for r in log[-15:]])
    assert last < 0.85 * first
    assert np.mean([r["iou"] for r in log[-15:]]) < np.mean([r["iou"] for r in log[:15]])
    assert {"loss", "iou", "cls", "focal", "lr", "images_per_s", "epoch"} <= set(log[0])
    assert log[-1]["backbone"] == "random-init"
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["backbone"] == "random-init" and summary["steps"] == 90
    resolved = recipes.load_recipe(smoke_run / "recipe.yaml")
    assert resolved["backbone"] == "random-init" and resolved["model"] == "gconet"
    assert torch.load(smoke_run / "final.pth", weights_only=True)["backbone"] == "random-init"


def test_smoke_predictions_beat_an_empty_map(smoke_run: Path, synth_root: Path, tmp_path: Path) -> None:
    sod = pytest.importorskip("py_sod_metrics")
    preds = tmp_path / "preds"
    main(["predict", "gconet", "--checkpoint", str(smoke_run / "final.pth"), "--dataset", "Synth",
          "--data-root", str(synth_root), "--out", str(preds), "--quiet"])  # fmt: skip
    model_s, empty_s = sod.Smeasure(), sod.Smeasure()
    gts = sorted((synth_root / "gts" / "Synth").glob("*/*.png"))
    assert len(gts) == 24
    for gt_path in gts:
        gt = io.read_gray(gt_path)
        pred = io.read_gray(preds / "gconet" / "Synth" / gt_path.parent.name / gt_path.name)
        assert pred.shape == gt.shape == (120, 160)
        model_s.step(pred, gt)
        empty_s.step(np.zeros_like(gt), gt)
    assert model_s.get_results()["sm"] > empty_s.get_results()["sm"] + 0.05
    info = json.loads((preds / "gconet" / "prediction.json").read_text())
    assert info["backbone"] == "random-init" and info["datasets"]["Synth"]["written"] == 24


def test_predict_then_evaluate(
    smoke_run: Path, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("cosalbench.metrics.evaluate")
    results = tmp_path / "results"
    main(["predict", "gconet", "--checkpoint", str(smoke_run / "final.pth"), "--dataset", "Synth",
          "--data-root", str(synth_root), "--out", str(tmp_path / "preds"), "--method", "smoke",
          "--evaluate", "--results", str(results), "--quiet"])  # fmt: skip
    document = json.loads((results / "smoke" / "Synth.json").read_text())
    assert document["backbone"] == "random-init" and document["protocol"] == "eval-co-sod"
    assert "Synth" in capsys.readouterr().out


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    main(
        [
            "train-reference",
            "gconet",
            "--recipe",
            SMOKE,
            "--out",
            str(straight),
            "--max-steps",
            "3",
            "--quiet",
        ]
    )
    main(
        ["train-reference", "gconet", "--recipe", SMOKE, "--out", str(resumed), "--max-steps", "2", "--quiet"]
    )
    main(
        ["train-reference", "gconet", "--recipe", SMOKE, "--out", str(resumed), "--max-steps", "3", "--quiet"]
    )
    assert [r["step"] for r in read_log(resumed)] == [1, 2, 3]
    assert read_log(resumed)[2]["loss"] == pytest.approx(read_log(straight)[2]["loss"], rel=1e-6)
    a = torch.load(straight / "final.pth", weights_only=True)["model"]
    b = torch.load(resumed / "final.pth", weights_only=True)["model"]
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    with pytest.raises(SystemExit) as info:  # a different recipe never continues this run
        main(
            [
                "train-reference",
                "gconet",
                "--recipe",
                SMOKE,
                "--out",
                str(resumed),
                "--max-steps",
                "4",
                "lr=0.1",
            ]
        )
    assert info.value.code == 2


def test_bad_overrides_and_models_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train-reference", "gconet", "--recipe", SMOKE, "--out", str(tmp_path), "learning_rate=1"])
    assert info.value.code == 2
    assert "unknown recipe key 'learning_rate'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(
            [
                "predict",
                "gconet",
                "--checkpoint",
                str(tmp_path / "none.pth"),
                "--dataset",
                "X",
                "--out",
                str(tmp_path),
            ]
        )
    assert info.value.code == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_overrides_parse_yaml_values() -> None:
    keys = {"lr": schema.TRAINER_KEYS["lr"], "loss_weights": schema.GCONET_KEYS["loss_weights"]}
    cfg = recipes.apply_overrides(
        {"lr": 1.0, "loss_weights": {"iou": 1.0, "cls": 3.0, "focal": 250.0}},
        ["lr=1e-4", "loss_weights.focal=10"],
        keys,
    )
    assert cfg == {"lr": 1e-4, "loss_weights": {"iou": 1.0, "cls": 3.0, "focal": 10.0}}


def test_corrupt_checkpoints_are_named_on_resume_and_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pth").write_bytes(b"not a pickle")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    commands = [
        ["train-reference", "gconet", "--recipe", SMOKE, "--out", str(run), "--quiet"],
        [
            "predict",
            "gconet",
            "--checkpoint",
            str(tmp_path / "list.pth"),
            "--dataset",
            "X",
            "--out",
            str(tmp_path),
        ],
    ]
    expected = [
        f"{run / 'checkpoint.pth'}: cannot read as a torch checkpoint",
        f"{tmp_path / 'list.pth'}: not a checkpoint (expected a mapping, got list)",
    ]
    for command, message in zip(commands, expected, strict=True):
        with pytest.raises(SystemExit) as info:
            main(command)
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_resume_after_a_crash_never_repeats_step_records(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train-reference", "gconet", "--recipe", SMOKE, "--out", str(run), "--quiet"]
    main([*args, "--max-steps", "2"])
    saved = (run / "checkpoint.pth").read_bytes()
    main([*args, "--max-steps", "3"])
    (run / "checkpoint.pth").write_bytes(saved)  # a crash after logging step 3, before checkpointing it
    main([*args, "--max-steps", "4"])
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4]
