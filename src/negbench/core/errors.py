"""Typed exceptions. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations


class NegbenchError(Exception):
    """Base class of every error negbench raises on purpose."""


class UnknownNameError(NegbenchError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TaskFileError(NegbenchError, ValueError):
    """A bad row or column in a task file. Always names file, row and column."""

    def __init__(self, file, row: int | None, column: str | None, reason: str):
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        where = self.file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {reason}")

    def as_record(self) -> dict:
        """The form stored in results/manifests when the row is skipped."""
        return {"file": self.file, "row": self.row, "column": self.column, "reason": self.reason}


class ConfigError(NegbenchError, ValueError):
    """A bad argument value; the message names the value and the allowed ones."""
