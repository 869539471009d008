"""`steady upscale IMG...`: enlarged copies of images, with their parameters and where they came from.

    steady upscale outputs/2026-12-07/00001-00-1234.png --upscaler 4x-UltraSharp --scale 4
    steady upscale a.png b.png --upscaler Lanczos --scale 2
    steady upscale outputs/2026-12-07 --upscaler 4x-UltraSharp --scale 2   # a folder: each image in it
    steady upscalers                      # what --upscaler takes: Lanczos, Nearest, and upscaler_dir's files

Each image becomes a one-image run (its source's prompt and parameters, the new size, A1111's
"Postprocess upscaler" and "Postprocess upscale by") made by the supervised worker; the new
catalog row records the source's hash and row. The tile size is planned for the memory there is
and printed before the work starts.
"""

from __future__ import annotations

import json
import sys

import click

from steady.cli.options import folder_options, folder_settings
from steady.params import DEVICES, DTYPES


@click.command("upscale")
@click.argument("images", nargs=-1, required=True)
@click.option("--upscaler", default="Lanczos", show_default=True,
              help="Lanczos, Nearest, or a model in upscaler_dir by name (ESRGAN, RealESRGAN, SwinIR, ...), or a path.")
@click.option("--scale", type=float, default=4.0, show_default=True, help="How many times larger (1 to 8).")
@click.option("--tile", type=int, default=None, help="Tile side in pixels (0: the whole image at once); "
              "default: the largest that fits the memory there is.")
@click.option("--device", default="auto", show_default=True, help="/".join(DEVICES) + " or cuda:N")
@click.option("--dtype", default="auto", show_default=True, help="/".join(DTYPES) + " (auto: float16 on a GPU, float32 on the CPU)")
@click.option("--out", "out_dir", default=None, help="Output folder (default: STEADY_HOME/outputs/YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image instead of text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@folder_options
def upscale_command(images: tuple[str, ...], upscaler: str, scale: float, tile: int | None, device: str, dtype: str,
                    out_dir: str | None, as_json: bool, quiet: bool, **folders: str | None) -> None:  # fmt: skip
    """Upscale IMAGES (files, or folders of them) with an upscaler; each result is a new image in the
    catalog, linked to its source."""
    from steady.catalog import open_catalog
    from steady.cli.runview import RunView, check_at_startup, ctrl_c_stops
    from steady.jobs.supervisor import Supervisor, raise_failure
    from steady.jobs.upscale import prepare_upscale, submit_upscale
    from steady.request.upscale import UpscaleRequest

    cfg = folder_settings(folders)
    request = UpscaleRequest(tuple(expand_folders(images)), upscaler, scale, tile, device, dtype, out_dir)
    # Refuse bad input before anything is written: an existing catalog is only read for lineage.
    if cfg.db_path.exists():
        with open_catalog(cfg.db_path) as reading:
            resolved = prepare_upscale(request, cfg, reading)
    else:
        resolved = prepare_upscale(request, cfg, None)  # type: ignore[arg-type]
    if not as_json and not quiet:
        for plan in dict.fromkeys(p.describe() for p in resolved.plans):
            click.echo(f"steady: {plan}", err=True)
    catalog = open_catalog(cfg.db_path)
    made = []
    try:
        check_at_startup(catalog, cfg, {resolved.out_dir}, quiet=as_json)
        jobs = submit_upscale(resolved, catalog, claim=True)
        with ctrl_c_stops(lambda text: click.echo(text, err=True)) as stop, Supervisor(catalog, cfg=cfg) as sup:
            for job, plan in zip(jobs, resolved.plans):
                view = RunView([0, max(1, plan.tiles)], as_json, quiet, unit="tile", label="upscale")
                try:
                    outcome = sup.run(job, view.on_event, stop.is_set, stopped="interrupted")
                finally:
                    view.close()
                if outcome.state == "interrupted":
                    click.echo(f"steady: interrupted: `steady resume {job.run_id}` makes this image", err=True)
                    sys.exit(130)
                raise_failure(outcome)
                made.extend(outcome.images)
    finally:
        catalog.close()
    if not as_json and not quiet:
        click.echo(f"{len(made)} image(s) upscaled {resolved.request.scale:g}x with {resolved.upscaler.name} on "
                   f"{resolved.device}/{resolved.dtype}")  # fmt: skip


def expand_folders(paths: tuple[str, ...]) -> list[str]:
    """Each folder among ``paths`` as the images directly in it (PNG, JPEG, WebP), in name order."""
    from pathlib import Path

    found: list[str] = []
    for path in paths:
        p = Path(path).expanduser()
        if p.is_dir():
            found += [str(f) for f in sorted(p.iterdir()) if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
                      and f.is_file() and not f.name.startswith(".")]  # fmt: skip
        else:
            found.append(path)
    return found


@click.command("upscalers")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per upscaler.")
@folder_options
def upscalers_command(as_json: bool, **folders: str | None) -> None:
    """The upscalers --upscaler takes: the built-in resamplers and the model files in upscaler_dir."""
    from steady.request.upscale import list_upscalers

    cfg = folder_settings(folders)
    for u in list_upscalers(cfg):
        if as_json:
            click.echo(json.dumps(u.to_dict()))
        elif u.name != "None":
            click.echo(f"{u.name:<32} {f'{u.scale}x  {u.path}' if u.path else 'built in'}")
    if not as_json:
        click.echo(f"(model files go in {cfg.upscaler_dir}: .safetensors, or .pth read with weights_only=True)", err=True)


def register(group: click.Group) -> None:
    group.add_command(upscale_command)
    group.add_command(upscalers_command)
