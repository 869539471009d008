"""Exceptions with messages a user can act on.

Every error that comes from user input names the argument and the value, so the
CLI can print it as one line and exit with code 2, and the API can answer 4xx.
"""

from __future__ import annotations


class SteadyError(Exception):
    """Base class for errors that are reported to the user as one line."""

    exit_code = 1


class BadInput(SteadyError):
    """An argument has a value we cannot use. Exit code 2 on the CLI, 422 on the API."""

    exit_code = 2

    def __init__(self, argument: str, value: object, why: str):
        self.argument = argument
        self.value = value
        self.why = why
        super().__init__(f"{argument}={value!r}: {why}")


class ModelError(BadInput):
    """The model file or folder is missing, unreadable, corrupt or not a Stable Diffusion model."""


class OutputError(BadInput):
    """The output folder cannot be written (permissions, disk full)."""


class CatalogError(SteadyError):
    """The catalog database is unusable."""
