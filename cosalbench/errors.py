"""The one error type user-facing code raises for bad input."""

from __future__ import annotations

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
