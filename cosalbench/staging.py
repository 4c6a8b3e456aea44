"""All-or-nothing result sets: files are written into a staging folder and moved in together.

A command that writes several outputs (every method's JSON and CSV, a whole dataset's masks) writes
them under :meth:`Staging.path` and they reach the output folder only when the block succeeds, by
renames on the same file system, which need no free space. A failure part-way (a full disk, an
error, Ctrl-C) leaves the output folder exactly as it was and removes the staging folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from cosalbench.errors import CosalbenchError


def check_output_folder(root: Path, option: str = "--out") -> None:
    """Refuse an output folder that exists as something other than a folder."""
    if os.path.lexists(root) and not root.is_dir():
        raise CosalbenchError(root, "exists and is not a folder", f"choose another {option}")


class Staging:
    """A staging folder beside ``root``; :meth:`path` maps a final path to its staged twin."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = self.root.parent / f".{self.root.name}.staging-{os.getpid()}"

    def path(self, final: str | Path) -> Path:
        """Where to write the output that will end up at ``final`` (a path under ``root``; a relative one is
        relative to the working directory, like ``root`` itself was)."""
        try:
            relative = Path(final).absolute().relative_to(self.root)
        except ValueError:
            relative = None
        if relative is None or ".." in relative.parts:
            raise CosalbenchError(final, "is outside the output folder", "names must not contain '..'")
        staged = self.folder / relative
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def commit(self) -> list[Path]:
        """Move every staged file to its final place (replacing what was there); return the finals."""
        moved: list[Path] = []
        for current, _dirs, files in os.walk(self.folder):
            for name in sorted(files):
                staged = Path(current) / name
                final = self.root / staged.relative_to(self.folder)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
                moved.append(final)
        return moved

    def final(self, path: str | Path) -> str | Path:
        """The final path of a staged ``path``; any other path unchanged (for error messages)."""
        try:
            return self.root / Path(path).absolute().relative_to(self.folder)
        except ValueError:
            return path

    def discard(self) -> None:
        """Remove the staging folder and whatever is in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def staged_outputs(root: str | Path, option: str = "--out") -> Iterator[Staging]:
    """Stage a command's outputs beside ``root`` and move them in only if the block succeeds."""
    root = Path(root).absolute()
    check_output_folder(root, option)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(root)
    try:
        yield staging
        staging.commit()
    except CosalbenchError as exc:  # name the file the user will look for, not its staged twin
        if exc.path is None or staging.final(exc.path) == exc.path:
            raise
        raise CosalbenchError(staging.final(exc.path), exc.problem, exc.hint) from exc
    except OSError as exc:
        if exc.filename is None or staging.final(exc.filename) == exc.filename or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(staging.final(exc.filename))) from exc
    finally:
        staging.discard()
