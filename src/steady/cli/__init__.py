"""The `steady` command. One module per command group; each exposes `register(group)`.

Errors derived from SteadyError are printed as one line (`steady: error: ...`) and exit with
their exit code (2 for bad input). Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import importlib
import sys

import click

from steady.version import __version__
from steady.errors import SteadyError

# Modules under steady.cli that add commands. Order is the order in `steady --help`.
COMMAND_MODULES = ("generate", "upscale", "resume", "models", "info", "history", "importer", "serve", "bench", "doctor", "evaltiny", "evaliterate", "evalimg2img", "soak")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="steady")
def cli() -> None:
    """Steady Diffusion: small, reproducible, offline Stable Diffusion runs."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"steady.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"steady.cli.{name}":
                continue  # command group not written yet
            raise
        module.register(cli)


def main(argv: list[str] | None = None) -> None:
    _register_all()
    try:
        cli.main(args=argv, prog_name="steady", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("steady: aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SteadyError as exc:
        click.echo(f"steady: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("steady: interrupted", err=True)
        sys.exit(130)
