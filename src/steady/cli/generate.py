"""`steady generate PROMPT`: a small run of images from one prompt, written as each finishes."""

from __future__ import annotations

import click

from steady.cli.options import request_options
from steady.params import GenerationRequest


@click.command("generate")
@click.argument("prompt")
@request_options()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image instead of text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def generate_command(as_json: bool, quiet: bool, **options) -> None:
    """Generate a small run of images from PROMPT (each PNG carries its parameters).

    Ctrl-C stops the run at the next step with its files and rows agreeing; `steady resume RUN`
    makes the rest."""
    from steady.catalog import open_catalog
    from steady.cli.runview import RunView, check_at_startup, make, report, steps_before
    from steady.config import settings
    from steady.jobs.runner import prepare, submit

    # Refuse bad input before the progress bar and before any process starts.
    cfg = settings()
    resolved = prepare(GenerationRequest(**options), cfg)
    request = resolved.request
    warned = set(resolved.warnings())  # a LoRA skipped is said before the run, and recorded in each image
    for line in resolved.warnings():
        click.echo(f"steady: warning: {line}", err=True)
    catalog = open_catalog(cfg.db_path)
    try:
        # Startup check: after a crash, files and rows agree again before anything new is written.
        check_at_startup(catalog, cfg, {resolved.out_dir}, quiet=as_json)
        view = RunView(steps_before(request.n_images, lambda i: resolved.image_params(i).steps), as_json, quiet,
                       warned)  # fmt: skip
        outcome = make(submit(resolved, catalog, claim=True), catalog, cfg, view)
    finally:
        catalog.close()
    report(outcome, as_json, quiet, f"{len(outcome.images)} image(s) from {resolved.model.name} [{resolved.model.hash}] "
                                    f"on {resolved.device}/{resolved.dtype} in {request.width}x{request.height}")


def register(group: click.Group) -> None:
    group.add_command(generate_command)
