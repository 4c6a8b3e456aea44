"""Input entries that cannot be read: broken links, folders named like images, empty files.

A listing that silently drops such entries shrinks a dataset without a word; every command that
reads images or masks asks :func:`cosalbench.layout.entry_problem` about each entry it lists and reports (or refuses)
what is wrong instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cosalbench.errors import CosalbenchError

SHOWN = 3  # entries named in a refusal (the count says how many there are in all)


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
