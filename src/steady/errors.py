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


def check_text(name: str, value: str) -> None:
    """BadInput naming ``name`` when ``value`` cannot be stored as text: a NUL character (paths and
    PNG text chunks cannot hold one), or bytes that are not UTF-8 (Python hands them over from the
    command line or the environment as lone surrogates, which SQLite and PNG iTXt chunks refuse)."""
    if "\x00" in value:
        raise BadInput(name, shorten(value), f"contains a NUL character (at character {value.index(chr(0))})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput(name, shorten(value), f"is not valid UTF-8 text (a byte that is not UTF-8 at character {exc.start}; "
                                           "give it as UTF-8)") from None  # fmt: skip


def shorten(value: str, keep: int = 80) -> str:
    """A long value, shortened for an error message (it is one line, not the whole prompt)."""
    return value if len(value) <= keep else value[:keep] + f"… ({len(value):,} characters)"
