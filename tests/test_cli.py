"""The console entry point's exit statuses and one-line messages."""

from __future__ import annotations

import pytest

from cosalbench.cli import main
from cosalbench.commands import evaluate as evaluate_command


def test_ctrl_c_says_interrupted_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_command, "plan_evaluation", interrupt)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "preds", "--dataset", "CoCA"])
    assert info.value.code == 130
    assert "cosalbench: interrupted (finished outputs are kept; rerun to resume)" in capsys.readouterr().err


def test_unknown_dataset_is_one_line_exit_2(tmp_path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(tmp_path), "--dataset", "NoSuchSet", "--data-root", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cosalbench: error: ") and "unknown dataset 'NoSuchSet'" in err
    assert len(err.splitlines()) == 1
