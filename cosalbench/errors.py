"""The one error type user-facing code raises for bad input, and the translation of OS errors into it."""

from __future__ import annotations

import errno
import re
from pathlib import Path


class CosalbenchError(Exception):
    """Bad input: printed by the CLI as ``cosalbench: error: <path>: <problem> (<hint>)``, exit 2."""

    exit_code = 2

    def __init__(self, path: str | Path | None, problem: str, hint: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.problem if self.path is None else f"{self.path}: {self.problem}"
        return one_line(text if not self.hint else f"{text} ({self.hint})")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so every cleanup runs; the CLI exits 143."""


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the indentation after them) folded into single spaces."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# "<_io.BytesIO object at 0x7f...>" and the like: a stream's repr says nothing about which file it was
LONG_MESSAGE = 120  # characters; a library message longer than this is cut to its first sentence
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def exception_summary(exc: BaseException) -> str:
    """A short one-line account of a library's exception, for the problem of a CosalbenchError.

    PyYAML's errors become ``<context>, <problem> at line L, column C`` (without the quoted source
    and caret lines); others keep their first line, without object reprs such as a BytesIO's (the
    error names the real path instead).
    """
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if isinstance(problem, str) and mark is not None:  # yaml.MarkedYAMLError
        context = getattr(exc, "context", None)
        where = f"at line {mark.line + 1}, column {mark.column + 1}"
        return f"{context}, {problem} {where}" if context else f"{problem} {where}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = _OBJECT_REPR.sub("", lines[0]).strip() if lines else ""
    # a paragraph of advice: its first sentence says what failed
    if len(text) > LONG_MESSAGE and ". " in text:
        text = text.split(". ", 1)[0]
    return text or type(exc).__name__


# errno -> what to tell the user to do about it
_OS_HINTS: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free space or choose another --out",
    errno.EDQUOT: "the disk quota is exhausted: free space or choose another --out",
    errno.EACCES: "permission denied: check the folder's permissions or choose another --out",
    errno.EPERM: "operation not permitted: check the folder's permissions",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.ENOTDIR: "a file stands where a folder is needed: move it or choose another path",
    errno.EISDIR: "a folder stands where a file is needed: move it or choose another path",
    errno.EEXIST: "something already exists there: move it or choose another path",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENAMETOOLONG: "the name is too long for the file system",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or use fewer --workers",
    errno.EIO: "input/output error: the disk or network share may be failing",
    errno.ELOOP: "too many levels of symbolic links: a link points back to itself",
}


def from_os_error(exc: OSError, path: str | Path | None = None) -> CosalbenchError:
    """The one-line error for an OS error: its path, what failed, and a hint chosen by its errno.

    ``path`` names the file when the exception does not carry one (``torch.save`` and other
    writers raise errors without ``filename``).
    """
    where = exc.filename if exc.filename is not None else path
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename2 is not None:
        what = f"{what} (-> {exc.filename2})"
    hint = _OS_HINTS.get(exc.errno) if exc.errno is not None else None
    return CosalbenchError(where, " ".join(what.split()), hint)
