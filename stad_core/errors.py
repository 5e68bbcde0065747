"""Error types that the CLI reports as a single line (no traceback)."""

from __future__ import annotations

from pathlib import Path


class StadError(Exception):
    """Base class for expected, user-facing errors (bad input, missing files, bad settings)."""


class InputFileError(StadError):
    """A problem with one input file, optionally at one line.

    Rendered as ``path:line: problem (hint)`` so users can jump straight to the row.
    """

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.hint = hint
        where = self.path if line is None else f"{self.path}:{line}"
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class ConfigError(StadError):
    """An invalid configuration file or ``key=value`` override."""
