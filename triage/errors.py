"""Errors that say what was expected and what arrived.

Every error a user can cause derives from :class:`TriageError`; the service maps
them to 4xx answers, the CLI to a one-line message and exit code 2.
"""

from __future__ import annotations


class TriageError(Exception):
    """Base class. ``status`` is the HTTP status the service answers with."""

    status = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict:
        return {"message": self.message, **self.details}


class InputError(TriageError, ValueError):
    """Bad input data: names the file, row and column where it can."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        got: object | None = None,
    ) -> None:
        where = ", ".join(
            f"{k} {v}" for k, v in (("file", file), ("row", row), ("column", column)) if v is not None
        )
        text = message
        if expected is not None:
            text += f" (expected {expected}, got {got!r})"
        if where:
            text = f"{where}: {text}"
        super().__init__(
            text, file=file, row=row, column=column, expected=expected, got=None if got is None else repr(got)
        )


class BundleError(TriageError):
    """A model bundle that is missing, corrupt, tampered with or from another library version."""

    status = 409


class TransitionError(TriageError):
    """A lifecycle transition outside the allowed table."""

    status = 409


class NotFound(TriageError):
    status = 404


class ConfigError(TriageError):
    """A configuration (rules, SLA policies, mapping) file that cannot be used."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = ":".join(str(x) for x in (file, line) if x is not None)
        super().__init__(f"{where}: {message}" if where else message, file=file, line=line)
