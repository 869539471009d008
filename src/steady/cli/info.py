"""`steady info IMAGE.png`: the generation parameters stored in a PNG.

Reads our own PNGs, A1111/Forge, ComfyUI and InvokeAI. Prints A1111's text form by default
(paste it into A1111's prompt box and press the arrow), or the parsed values with --json.

    steady info outputs/2026-05-09/00012-00-1234.png
    steady info --json comfy.png | jq .params.seed
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from steady.errors import BadInput


@click.command("info")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print the parsed values as JSON: source, params, warnings.")
def info_command(image: Path, as_json: bool) -> None:
    """Print the generation parameters of IMAGE (a PNG from steady, A1111, ComfyUI or InvokeAI)."""
    from steady.images.pngmeta import read_png_info

    try:
        info = read_png_info(image)
    except BadInput as exc:
        # The library names its own argument (`path`); the user typed IMAGE.
        raise BadInput("image", str(image), exc.why) from exc
    for warning in info.warnings:
        click.echo(f"steady: warning: {image}: {warning}", err=True)
    if as_json:
        payload = {"path": str(image), "source": info.source, "params": info.params, "warnings": info.warnings}
        # A JSON chunk may hold a lone surrogate ("\ud800"): written back as the same escape.
        text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
        click.echo(_LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))
        return
    if info.source == "none" or not info.parameters_text:
        click.echo(f"steady: {image}: no generation parameters found", err=True)
        return
    click.echo(info.parameters_text.encode("utf-8", "backslashreplace").decode("utf-8"))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def register(group: click.Group) -> None:
    group.add_command(info_command)
