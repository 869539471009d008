"""CLI options built from the parameter table (steady.params), so each field is spelled, bounded
and explained in one place.

    @request_options()                 # every field with flags: -n/--images, --steps, --cfg ...
    @request_options("model", "steps") # only these
    @request_options("sampler", sampler="Euler")   # with another default for this command
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from steady.config import Settings, settings
from steady.params import GenerationRequest, table


def request_options(*names: str, **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the table's click options for ``names`` (default: every field that has flags), in the
    table's order; each lands in the command's keyword arguments under its field name.
    ``defaults``: this command's own default for a field (a measuring command's fixed sampler)."""
    rows = [(n, p) for n, p in table().items() if p.flags and (not names or n in names)]
    default = GenerationRequest.__dataclass_fields__

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name, p in reversed(rows):
            value = defaults.get(name, default[name].default)
            kw: dict[str, Any] = {"help": p.help}
            if p.multiple:  # given more than once: a tuple (the command makes one run per value)
                kw.update(type=p.kind, multiple=True, default=())
            elif p.kind is bool:
                kw.update(is_flag=True, default=bool(value))
            else:
                kw.update(type=p.kind, default=value, show_default=value not in (None, ""))
            if p.metavar:
                kw["metavar"] = p.metavar
            fn = click.option(*p.flags, name, **kw)(fn)
        return fn

    return decorate


FOLDER_OPTIONS = (
    ("--models-dir", "models_dir", "Checkpoints folder (config: models_dir)."),
    ("--lora-dir", "lora_dir", "LoRA folder, `<lora:NAME:W>` (config: lora_dir)."),
    ("--embeddings-dir", "embeddings_dir", "Textual-inversion embeddings folder (config: embeddings_dir)."),
    ("--vae-dir", "vae_dir", "VAE folder, `--vae NAME` (config: vae_dir)."),
    ("--styles-file", "styles_file", "A1111 styles.csv, `--style NAME` (config: styles_file)."),
    ("--upscaler-dir", "upscaler_dir", "Upscaler models folder (config: upscaler_dir)."),
    ("--a1111-dir", "a1111_dir", "An A1111/Forge folder: all of the above in its layout (config: a1111_dir)."),
)


def folder_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The folder settings of config.toml as options (each wins over config.toml for this command);
    ``folder_settings(options)`` takes them out of the command's keyword arguments."""
    for flag, name, text in reversed(FOLDER_OPTIONS):
        fn = click.option(flag, name, default=None, metavar="PATH", help=text)(fn)
    return fn


def folder_settings(options: dict[str, Any]) -> Settings:
    """The settings with the folder options given (removed from ``options``), checked: a folder
    option that does not exist is refused naming it, before anything starts."""
    from pathlib import Path

    from steady.errors import BadInput

    given = {name: options.pop(name, None) for _, name, _ in FOLDER_OPTIONS}
    for _, name, _ in FOLDER_OPTIONS:
        value = given[name]
        if value and not Path(value).expanduser().exists():
            raise BadInput(name, value, "does not exist")
    return settings().with_folders(**given)
