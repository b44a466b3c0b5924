"""Exceptions that carry a message a user can act on.

The CLI prints any :class:`MetarecError` as one line and exits with status 2,
so every raise site should name the offending value and the fix.
"""

from __future__ import annotations

from pathlib import Path


class MetarecError(Exception):
    """Base class for errors caused by user input rather than by a bug."""


class ConfigError(MetarecError):
    """Invalid configuration value or option."""


class DataError(MetarecError):
    """Invalid, missing or unreadable data, optionally pointing at a file and line."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.fix = fix
        location = ""
        if self.path is not None:
            location = self.path if line is None else f"{self.path}:{line}"
            location += ": "
        text = f"{location}{message}"
        if fix:
            text += f". {fix[0].upper()}{fix[1:]}"
        super().__init__(text)
