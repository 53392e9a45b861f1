"""Errors a person can act on, each mapped to a CLI exit code: 0 ok, 2 bad input, 3 a gate failed, 1 else."""

from __future__ import annotations


class TesseraError(Exception):
    """Base class: the message is one line saying what, where and how to fix it."""

    exit_code = 1


class BadInputError(TesseraError):
    """The input or the arguments are wrong: exit code 2."""

    exit_code = 2


class DataQualityError(TesseraError):
    """A quality gate failed: exit code 3."""

    exit_code = 3

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result or {}


_BAD_PARAMETERS = {"ParameterTypeError", "SignatureMismatchError", "ParameterBindError"}


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that ended a run (Prefect's parameter validation errors are bad input)."""
    if isinstance(exc, TesseraError):
        return exc.exit_code
    return 2 if type(exc).__name__ in _BAD_PARAMETERS else 1


class MonitoringAlert(DataQualityError):
    """Monitoring passed a drift or change threshold and the run was asked to fail on it: exit code 3."""
