"""Typed exceptions. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations


class NegbenchError(Exception):
    """Base class of every error negbench raises on purpose."""


class UnknownNameError(NegbenchError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def located(file, **parts) -> str:
    """'FILE, row 3, column 'x'': the file, then each known part (None parts are left out);
    str values are quoted, others shown as they are."""
    shown = [f"{name} {value!r}" if isinstance(value, str) else f"{name} {value}"
             for name, value in parts.items() if value is not None]
    return ", ".join([str(file), *shown])


class TaskFileError(NegbenchError, ValueError):
    """A bad row or column in a task file. Always names file, row and column."""

    def __init__(self, file, row: int | None, column: str | None, reason: str):
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        super().__init__(f"{located(file, row=row, column=column)}: {reason}")

    def as_record(self) -> dict:
        """The form stored in results/manifests when the row is skipped."""
        return {"file": self.file, "row": self.row, "column": self.column, "reason": self.reason}


class ConfigError(NegbenchError, ValueError):
    """A bad argument value; the message names the value and the allowed ones."""
