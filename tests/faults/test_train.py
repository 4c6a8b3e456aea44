"""Faults of ``train-reference``: bad recipes and overrides, bad --max-steps, corrupt checkpoints, a full
disk while checkpointing, two trainers in one --out. Each ends with one line naming the path, exit 2,
no traceback and no checkpoint half-written."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from tests.faults.conftest import assert_refused, cli, snapshot

pytest.importorskip("torch")

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "gconet-smoke.yaml"


def train(out: Path, *args: str | Path):  # noqa: ANN201 -- a CompletedProcess
    return cli("train-reference", "gconet", "--out", out, "--quiet", *args)


def write_recipe(tmp_path: Path, line: str) -> Path:
    """The smoke recipe with ``line`` appended (a later key replaces the earlier one in YAML)."""
    text = "\n".join(
        row for row in SMOKE.read_text().splitlines() if not row.startswith(line.split(":")[0] + ":")
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(f"{text}\n{line}\n")
    return path


def assert_no_checkpoint(out: Path) -> None:
    """Neither a checkpoint nor a temporary left behind."""
    names = [p.name for p in out.rglob("*.pth")] if out.exists() else []
    assert names == [], names


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("epoch: 2", ["unknown recipe key 'epoch'", "did you mean 'epochs'?"]),
        ("lr: fast", ["'lr'", "'fast'", "a number > 0"]),
        ("epochs: ten", ["'epochs'", "'ten'", "an integer"]),
        ("betas: 0.9", ["'betas'", "0.9", "a list of 2 numbers"]),
        ("group_size: 0", ["'group_size'", "bad value 0", "an integer >= 1"]),
        ("optimizer: adamm", ["'optimizer'", "'adamm'", "one of adam, adamw, sgd"]),
        ("loss_weights: {iou: 1.0, clss: 3.0}", ["unknown recipe key 'loss_weights.clss'", "'cls'"]),
    ],
)
def test_bad_recipe_keys_and_values_are_one_line(tmp_path: Path, line: str, fragments: list[str]) -> None:
    recipe = write_recipe(tmp_path, line)
    out = tmp_path / "run"
    assert_refused(train(out, "--recipe", recipe), recipe, *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("lr=abc", ["lr=abc", "'abc'", "a number > 0"]),
        ("betas=[0.9]", ["'betas'", "a list of 2 numbers"]),
        ("synthetic.n_groups=1", ["'synthetic.n_groups'", "an integer >= 2"]),
    ],
)
def test_bad_overrides_are_one_line(tmp_path: Path, override: str, fragments: list[str]) -> None:
    out = tmp_path / "run"
    assert_refused(train(out, "--recipe", SMOKE, override), *fragments)
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_steps_below_one_is_refused(tmp_path: Path, value: str) -> None:
    out = tmp_path / "run"
    assert_refused(train(out, "--recipe", SMOKE, "--max-steps", value), "--max-steps", value, ">= 1")
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [(b"lr: [1\nepochs: 2\n", "not valid YAML"), (b"lr: 1\n\xff\xfe: x\n", "not a UTF-8 text file")],
)
def test_unreadable_recipe_is_one_line(tmp_path: Path, text: bytes, fragment: str) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_bytes(text)
    assert_refused(train(tmp_path / "run", "--recipe", recipe), recipe, fragment)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint_on_resume_is_one_line(tmp_path: Path, damage: str) -> None:
    out = tmp_path / "run"
    checkpoint = out / "checkpoint.pth"
    if damage == "garbage":
        out.mkdir()
        checkpoint.write_bytes(b"\x80\x04not a pickle at all")
    else:
        done = train(out, "--recipe", SMOKE, "--max-steps", "1")
        assert done.returncode == 0, done.stderr
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    before = {k: v for k, v in snapshot(out).items() if k != ".lock"}
    assert_refused(
        train(out, "--recipe", SMOKE, "--max-steps", "2"), checkpoint, "cannot read as a torch checkpoint"
    )
    after = {k: v for k, v in snapshot(out).items() if k != ".lock"}  # the lock file stays, unlocked
    assert after == before


def test_full_disk_while_checkpointing_names_the_file(
    tmp_path: Path, synth_root: Path, full_disk: Path
) -> None:
    out = full_disk / "run"
    args = ["--recipe", SMOKE, "--train-set", "Synth", "--data-root", synth_root, "--max-steps", "1"]
    result = train(out, *args, f"cache_dir={tmp_path / 'cache'}")
    assert_refused(result, out / "checkpoint.pth", "No space left on device")
    assert_no_checkpoint(out)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_two_trainers_cannot_share_one_out(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("4242")
        handle.flush()
        assert_refused(train(out, "--recipe", SMOKE, "--max-steps", "1"), out, "another trainer", "4242")
    assert_no_checkpoint(out)
