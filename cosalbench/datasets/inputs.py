"""Input entries that cannot be read: broken links, folders named like images, empty files.

A listing that silently drops such entries shrinks a dataset without a word; every command that
reads images or masks asks :func:`entry_problem` about each entry it lists and reports (or refuses)
what is wrong instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cosalbench.errors import CosalbenchError

SHOWN = 3  # entries named in a refusal (the count says how many there are in all)


def entry_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None when it is a non-empty regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (-> {os.readlink(path)})"
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if os.path.isdir(path):
        return "is a folder, not a file"
    if not os.path.isfile(path):
        return "is not a regular file"
    if info.st_size == 0:
        return "is empty (0 bytes)"
    return None


def refuse_unreadable(
    problems: Sequence[tuple[Path, str]], total: int, what: str, hint: str = "fix or remove them"
) -> None:
    """Raise one error naming the first unreadable entry, the count and a few more (no-op when none)."""
    if not problems:
        return
    (first, problem), *rest = problems
    more = ", ".join(str(path) for path, _ in rest[: SHOWN - 1])
    also = f"; also {more}" + (", ..." if len(rest) >= SHOWN else "") if rest else ""
    raise CosalbenchError(first, f"{problem}: {len(problems)} of {total} {what} cannot be read{also}", hint)
