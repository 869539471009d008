"""`steady generate PROMPT`: a small run of images from one prompt, written as each finishes."""

from __future__ import annotations

import click

from steady.cli.options import folder_options, folder_settings, request_options
from steady.params import GenerationRequest


@click.command("generate")
@click.argument("prompt")
@request_options()
@folder_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image instead of text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def generate_command(as_json: bool, quiet: bool, init_image: tuple[str, ...], styles: tuple[str, ...], **options) -> None:
    """Generate a small run of images from PROMPT (each PNG carries its parameters).

    With --init-image, the run starts from that image (img2img; with --mask, inpainting); several
    --init-image, or a folder, make one run per image. --style NAME (repeatable) applies A1111
    styles from styles_file into the prompt.

    Ctrl-C stops the run at the next step with its files and rows agreeing; `steady resume RUN`
    makes the rest."""
    from steady.images.inputs import checked_file
    from steady.jobs.runner import prepare

    # Refuse bad input before the progress bar and before any process starts: every init image
    # is read and checked before the first run is prepared.
    cfg = folder_settings(options)
    inits = init_images(init_image)
    for path in inits:
        checked_file(path, cfg.inputs_dir, "init_image")
    for path in inits or [""]:
        resolved = prepare(GenerationRequest(**options, init_image=path, styles="\n".join(styles)), cfg)
        _run(resolved, cfg, as_json, quiet)


def init_images(given: tuple[str, ...]) -> list[str]:
    """The init images given: files as they are, a folder's images (sorted by name) in its place."""
    from pathlib import Path

    from steady.errors import BadInput

    found: list[str] = []
    for value in given:
        path = Path(value).expanduser()
        if path.is_dir():
            images = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not images:
                raise BadInput("init_image", value, "is a folder with no images (" + ", ".join(IMAGE_SUFFIXES) + ")")
            found += images
        else:
            found.append(value)
    return found


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _run(resolved, cfg, as_json: bool, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    from steady.catalog import open_catalog
    from steady.cli.runview import RunView, check_at_startup, make, report, steps_before
    from steady.jobs.runner import submit

    request = resolved.request
    warned = set(resolved.warnings())  # a LoRA skipped is said before the run, and recorded in each image
    for line in resolved.warnings():
        click.echo(f"steady: warning: {line}", err=True)
    if resolved.hires is not None and not quiet:
        from steady.request.hires import hires_note

        click.echo("steady: " + hires_note(resolved.hires, request.width, request.height, resolved.memory), err=True)
    catalog = open_catalog(cfg.db_path)
    try:
        # Startup check: after a crash, files and rows agree again before anything new is written.
        check_at_startup(catalog, cfg, {resolved.out_dir}, quiet=as_json)
        view = RunView(steps_before(request.n_images, lambda i: steps_run(resolved.image_params(i))), as_json, quiet,
                       warned)  # fmt: skip
        outcome = make(submit(resolved, catalog, claim=True), catalog, cfg, view)
    finally:
        catalog.close()
    source = f" from {request.init_image}" if request.init_image else ""
    report(outcome, as_json, quiet, f"{len(outcome.images)} image(s){source} from {resolved.model.name} "
                                    f"[{resolved.model.hash}] on {resolved.device}/{resolved.dtype}"
                                    f"{'/openvino' if resolved.request.backend == 'openvino' else ''} in "
                                    f"{request.width}x{request.height}")  # fmt: skip


def steps_run(params) -> int:  # type: ignore[no-untyped-def]
    """The sampling steps an image runs: img2img runs the last N x strength of N (at least the bar's 1);
    a hires fix adds its second pass's."""
    if params.hires is not None:  # both passes: N, then the last hires steps x strength of the second
        return params.steps + min(int(params.hires.steps * params.hires.strength), params.hires.steps)
    if params.source is None:
        return params.steps
    return max(1, min(int(params.steps * params.source.strength), params.steps))


def register(group: click.Group) -> None:
    group.add_command(generate_command)
