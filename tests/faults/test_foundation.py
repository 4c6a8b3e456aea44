"""Faults handled by the shared machinery: OS errors become one line, staged outputs are all-or-nothing."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from cosalbench import io
from cosalbench.errors import from_os_error
from cosalbench.staging import staged_outputs


def test_os_error_becomes_one_line_naming_the_path() -> None:
    error = from_os_error(OSError(errno.ENOSPC, "No space left on device", "/out/a.json"))
    assert str(error) == (
        "/out/a.json: No space left on device (the disk is full: free space or choose another --out)"
    )
    assert error.exit_code == 2


def test_os_error_without_a_filename_uses_the_given_path() -> None:
    error = from_os_error(OSError(errno.EROFS, "Read-only file system"), path="/ro/final.pth")
    assert str(error).startswith("/ro/final.pth: Read-only file system (")


def test_staged_outputs_reach_the_folder_together(tmp_path: Path) -> None:
    out = tmp_path / "results"
    with staged_outputs(out) as stage:
        io.write_text(stage.path(out / "m" / "A.json"), "a")
        io.write_text(stage.path(out / "m" / "A.images.csv"), "b")
        assert not out.exists()
    assert (out / "m" / "A.json").read_text() == "a" and (out / "m" / "A.images.csv").read_text() == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_relative_output_paths_land_where_they_are_named(tmp_path: Path, monkeypatch) -> None:
    """A relative --out (``res``) and final paths built from it (``res/m/A.json``) are not nested twice."""
    monkeypatch.chdir(tmp_path)
    with staged_outputs(Path("res")) as stage:
        io.write_text(stage.path(Path("res") / "m" / "A.json"), "a")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "res/m/A.json"
    ]


def test_a_failure_leaves_the_previous_outputs_untouched(tmp_path: Path) -> None:
    out = tmp_path / "results"
    io.write_text(out / "m" / "A.json", "old")
    with pytest.raises(RuntimeError), staged_outputs(out) as stage:
        io.write_text(stage.path(out / "m" / "A.json"), "new")
        raise RuntimeError("disk full half-way")
    assert (out / "m" / "A.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_staging_refuses_paths_outside_the_output_folder(tmp_path: Path) -> None:
    from cosalbench.errors import CosalbenchError

    with (
        pytest.raises(CosalbenchError, match="outside the output folder"),
        staged_outputs(tmp_path / "o") as s,
    ):
        s.path("../escape.json")


def test_an_output_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from cosalbench.errors import CosalbenchError

    (tmp_path / "o").write_text("a file")
    with pytest.raises(CosalbenchError, match="exists and is not a folder"), staged_outputs(tmp_path / "o"):
        pass


def test_temporary_names_differ_per_process_and_are_recognised(tmp_path: Path) -> None:
    tmp = io.temp_path(tmp_path / "0002.jpg")
    assert tmp.name != "0002.tmp.jpg" and io.is_temp_path(tmp) and not io.is_temp_path(tmp_path / "0002.jpg")
