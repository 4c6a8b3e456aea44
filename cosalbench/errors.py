"""The one error type user-facing code raises for bad input, and the translation of OS errors into it."""

from __future__ import annotations

import errno
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
        return text if not self.hint else f"{text} ({self.hint})"


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
