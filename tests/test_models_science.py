"""Training science on CPU: provenance from checkpoint to result document, the held-out validation split
and best.pth, several seeds, and the one-line refusals of bad inputs (tiny GCoNet, synthetic data)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosalbench import io  # noqa: E402
from cosalbench.cli import main  # noqa: E402
from cosalbench.datasets import synth  # noqa: E402
from cosalbench.errors import CosalbenchError  # noqa: E402
from cosalbench.provenance import KEYS  # noqa: E402
from reference_models import provenance, validation  # noqa: E402
from reference_models.data import GroupDataset  # noqa: E402
from reference_models.train import RUN_CONTROL_KEYS, resolve_recipe  # noqa: E402

SMOKE = str(Path(__file__).resolve().parents[1] / "recipes" / "gconet-smoke.yaml")
# 6 groups x 4 images at 32 px, two groups held out and scored every 2 steps (and at the last, 5)
TINY = ["synthetic.images_per_group=4", "group_size=2", "validation.groups=2", "validation.every=2"]


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train-reference", "gconet", "--recipe", SMOKE, "--out", str(out), "--quiet", *TINY, *extra]


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def digest_of_recipe(recipe: dict) -> str:
    """The recipe digest recomputed here: canonical JSON without run-control keys and the seed."""
    kept = {key: value for key, value in recipe.items() if key not in RUN_CONTROL_KEYS and key != "seed"}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("science") / "gconet"
    main([*train_args(out), "--max-steps", "5"])
    return out


def test_checkpoints_carry_provenance(run: Path) -> None:
    final, best, state = load(run / "final.pth"), load(run / "best.pth"), load(run / "checkpoint.pth")
    for payload, name in ((final, "final.pth"), (best, "best.pth"), (state, "checkpoint.pth")):
        record = payload["provenance"]
        assert list(record) == list(KEYS)
        assert record["model"] == "gconet" and record["train_sets"] == ["synthetic"]
        assert record["recipe_sha256"] == digest_of_recipe(final["recipe"])
        assert record["backbone_weights"] is None  # random init
        assert record["input_size"] == 32 and record["seed"] == 0
        assert record["checkpoint"] == {"file": name, "sha256": None}  # a file cannot hold its own digest
    assert final["provenance"]["steps"] == 5 and final["provenance"]["checkpoint_rule"] == "last step"
    assert best["provenance"]["steps"] == best["step"]
    assert best["provenance"]["checkpoint_rule"] == (
        "best validation S-measure (image mean, pysodmetrics protocol) on 2 held-out training groups "
        "(8 images), evaluated every 2 steps and at the last step"
    )
    summary = json.loads((run / "summary.json").read_text())
    sha = hashlib.sha256((run / "final.pth").read_bytes()).hexdigest()
    assert summary["provenance"]["checkpoint"] == {"file": "final.pth", "sha256": sha}


def test_validation_groups_are_held_out_and_best_is_the_best(run: Path) -> None:
    record = json.loads((run / "validation.json").read_text())
    held = record["held_out_groups"]
    full = GroupDataset(run / "data", "SynthTrain", 32)
    cfg = resolve_recipe("gconet", SMOKE, TINY, {})
    training, validator = validation.hold_out(cfg, full, run / "again", main=False)
    assert sorted(validator.images) == held and len(held) == 2
    assert set(training.groups).isdisjoint(held) and set(training.groups) | set(held) == set(full.groups)
    assert validation.choose(full, cfg["validation"]) == validator.images  # same seed, same split
    other = validation.choose(full, {**cfg["validation"], "seed": 1})
    assert sorted(other) != held or other != validator.images  # the seed picks them
    (entry,) = (run / "cache").iterdir()  # the training cache holds the training groups only
    assert json.loads((entry / "stamp.json").read_text())["pairs"] == 4 * 4
    checks = [r for r in log_of(run) if "validation" in r]
    assert [r["step"] for r in checks] == [2, 4, 5]
    values = [r["validation"]["value"] for r in checks]
    best = load(run / "best.pth")
    assert best["validation"]["value"] == max(values)
    assert best["step"] == checks[int(np.argmax(values))]["step"]
    summary = json.loads((run / "summary.json").read_text())["validation"]
    assert summary["best_value"] == max(values) and summary["final_value"] == values[-1]


def test_prediction_and_result_documents_carry_the_provenance(run: Path, tmp_path: Path) -> None:
    sod = pytest.importorskip("py_sod_metrics")
    preds, results, data = tmp_path / "preds", tmp_path / "results", run / "data"
    best = load(run / "best.pth")
    main(["predict", "gconet", "--checkpoint", str(run / "best.pth"), "--dataset", "SynthTrain",
          "--data-root", str(data), "--out", str(preds), "--quiet"])  # fmt: skip
    info = json.loads((preds / "gconet" / "prediction.json").read_text())
    sha = hashlib.sha256((run / "best.pth").read_bytes()).hexdigest()
    expected = {**best["provenance"], "checkpoint": {"file": "best.pth", "sha256": sha}}
    assert info["provenance"] == expected == info["datasets"]["SynthTrain"]["provenance"]
    # the logged validation value is PySODMetrics' S-measure of best.pth's maps of the held-out images
    measure = sod.Smeasure()
    for group in json.loads((run / "validation.json").read_text())["held_out_groups"]:
        for gt_path in sorted((data / "gts" / "SynthTrain" / group).glob("*.png")):
            measure.step(
                io.read_gray(preds / "gconet" / "SynthTrain" / group / gt_path.name), io.read_gray(gt_path)
            )
    assert measure.get_results()["sm"] == pytest.approx(best["validation"]["value"], abs=1e-9)
    evaluate = [
        "evaluate",
        str(preds),
        "--dataset",
        "SynthTrain",
        "--data-root",
        str(data),
        "--out",
        str(results),
    ]
    main([*evaluate, "--workers", "1"])
    document = json.loads((results / "gconet" / "SynthTrain.json").read_text())
    assert document["provenance"] == expected
    changed = {**info, "datasets": {"SynthTrain": {**info["datasets"]["SynthTrain"]}}}
    changed["datasets"]["SynthTrain"]["provenance"] = {**expected, "steps": 999}
    io.write_json(preds / "gconet" / "prediction.json", changed)
    main([*evaluate, "--workers", "1"])  # a new provenance is a new fingerprint: rescored, not reused
    assert json.loads((results / "gconet" / "SynthTrain.json").read_text())["provenance"]["steps"] == 999
    (preds / "gconet" / "prediction.json").write_text("{not json")
    with pytest.raises(SystemExit) as info_exit:
        main([*evaluate, "--workers", "1"])
    assert info_exit.value.code == 2


def test_resume_with_validation_stays_bit_exact(run: Path, tmp_path: Path) -> None:
    resumed = tmp_path / "resumed"
    main([*train_args(resumed), "--max-steps", "3"])
    main([*train_args(resumed), "--max-steps", "5"])
    a, b = load(run / "final.pth"), load(resumed / "final.pth")  # the fixture trained 5 steps straight
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    straight, again = (
        {r["step"]: r["validation"]["value"] for r in log_of(d) if "validation" in r} for d in (run, resumed)
    )
    assert sorted(again) == [2, 3, 4, 5]  # the first part's last step (3) was validated too
    assert all(again[step] == value for step, value in straight.items())
    best = load(resumed / "best.pth")  # the best of every validation of the run, both parts
    assert best["validation"]["value"] == max(again.values()) and best["step"] == max(again, key=again.get)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0,1", "seed=3"], "--seeds and a seed=K override exclude each other"),
        (["--seeds", "0,x"], "--seeds '0,x': expected comma-separated non-negative integers"),
        (["--seeds", "1,1"], "--seeds '1,1': a seed is repeated"),
        (["validation.groups=5"], "validation.groups=5 holds out 5 of the 6 training groups"),
        (["validation.groups=1.5"], "recipe key 'validation.groups': bad value 1.5"),
        (["validation.metric=iou"], "recipe key 'validation.metric': bad value 'iou'"),
    ],
)
def test_bad_inputs_are_one_line_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*train_args(tmp_path / "run"), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_test_set_is_never_a_validation_source(tmp_path: Path) -> None:
    root = synth.write_dataset(tmp_path, synth.SynthSpec(name="CoCA", n_groups=4, images_per_group=2))
    cfg = resolve_recipe("gconet", SMOKE, ["validation.groups=1"], {})
    with pytest.raises(CosalbenchError, match="CoCA is a test set"):
        validation.hold_out(cfg, GroupDataset(root, "CoCA", 32), tmp_path / "run", main=True)
    assert not (tmp_path / "run").exists()


def test_released_state_dicts_get_nulls_for_what_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "final_gconet.pth"
    record = provenance.for_loaded_checkpoint(
        {"some.weight": 0}, path, "ab" * 32, {"size": 224}, "gconet", ()
    )
    assert record == {
        "model": "gconet", "recipe_sha256": None, "train_sets": None, "backbone_weights": None,
        "input_size": 224, "seed": None, "steps": None, "checkpoint_rule": None,
        "checkpoint": {"file": "final_gconet.pth", "sha256": "ab" * 32},
    }  # fmt: skip


def test_two_ranks_validate_once_per_check_and_run_seeds_in_turn(tmp_path: Path) -> None:
    out = tmp_path / "x"
    recipe = Path(SMOKE).with_name("rcgs-smoke.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "cosalbench.cli", "train-reference", "rcgs", "--recipe", str(recipe), "--out", str(out),
               "--max-steps", "3", "--quiet", "size=32", "validation.groups=1", "validation.every=2",
               "--seeds", "0,1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"seeds"') == 1  # one summary, from rank 0
    for seed in (0, 1):
        run = out / f"seed{seed}"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["world_size"] == 2 and summary["steps"] == 3
        checks = [r for r in log_of(run) if "validation" in r]
        assert [r["step"] for r in checks] == [2, 3]  # once per check, not once per rank
        assert checks[0]["validation"]["groups"] == 1 and checks[0]["validation"]["images"] == 6
        assert load(run / "best.pth")["provenance"]["seed"] == seed
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and [row["seed"] for row in summary["runs"]] == [0, 1]
    records = [load(out / f"seed{k}" / "final.pth")["provenance"] for k in (0, 1)]
    assert [record["seed"] for record in records] == [0, 1]
    assert records[0]["recipe_sha256"] == records[1]["recipe_sha256"] == summary["recipe_sha256"]
    splits = [json.loads((out / f"seed{k}" / "validation.json").read_text()) for k in (0, 1)]
    assert splits[0]["held_out_groups"] == splits[1]["held_out_groups"]  # one split for every seed
    weights = [load(out / f"seed{k}" / "final.pth")["model"] for k in (0, 1)]
    assert any(not torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    values = [row["best_value"] for row in summary["runs"]]
    assert summary["best_value"] == {
        "mean": pytest.approx(np.mean(values)),
        "std": pytest.approx(np.std(values, ddof=1)),
        "n": 2,
    }
