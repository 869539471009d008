"""`steady generate PROMPT`: a small run of images from one prompt, written as each finishes."""

from __future__ import annotations

import json

import click

from steady.cli.options import request_options
from steady.cli.progress import progress
from steady.params import GenerationRequest


@click.command("generate")
@click.argument("prompt")
@request_options()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image instead of text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def generate_command(as_json: bool, quiet: bool, **options) -> None:
    """Generate a small run of images from PROMPT (each PNG carries its parameters)."""
    from steady.catalog import open_catalog, reconcile
    from steady.config import settings
    from steady.jobs.protocol import Progress, Recycle
    from steady.jobs.runner import prepare, run
    from steady.jobs.supervisor import WorkerDied, raise_failure
    from steady.params import GenerationResult

    # Refuse bad input before the progress bar and before any process starts.
    cfg = settings()
    resolved = prepare(GenerationRequest(**options), cfg)
    request = resolved.request
    warned = set(resolved.warnings())  # a LoRA skipped is said before the run, and recorded in each image
    for line in resolved.warnings():
        click.echo(f"steady: warning: {line}", err=True)
    catalog = open_catalog(cfg.db_path)
    # Startup check: after a crash, files and rows agree again before anything new is written.
    for folder in {cfg.outputs_dir, resolved.out_dir}:
        repaired = reconcile(catalog, folder)
        fixed = repaired.temp_files_removed + repaired.images_recorded + repaired.rows_removed
        if fixed and not as_json:
            click.echo(
                f"catalog repaired in {folder}: {repaired.images_recorded} image(s) recorded, "
                f"{repaired.rows_removed} row(s) of missing files removed, "
                f"{repaired.temp_files_removed} temp file(s) deleted", err=True,
            )
    # Steps before each image (a grid's Steps axis gives images different step counts).
    before = [0]
    for i in range(request.n_images):
        before.append(before[-1] + resolved.image_params(i).steps)
    bar, last = None, [0]

    def on_event(event: object) -> None:
        nonlocal bar
        if isinstance(event, Progress) and not (quiet or as_json):
            if bar is None:  # made at the first step, so the worker's start-up is not counted as steps
                bar = progress(before[-1], "step", "generate")
            done = before[event.image_index] + event.step
            bar.update(done - last[0])
            last[0] = done
            vram = f", VRAM {event.vram_bytes / 2**30:.2f} GiB" if event.vram_bytes else ""
            bar.set_postfix_str(
                f"image {event.image_index + 1}/{event.n_images}, "
                f"{event.seconds_per_step:.2f} s/step, RSS {event.rss_bytes / 2**30:.2f} GiB{vram}"
            )
        elif isinstance(event, GenerationResult):
            for line in event.params.extra.get("warnings", []):  # what the worker could not apply
                if line not in warned:
                    warned.add(line)
                    _note(bar, f"steady: warning: {line}")
            if as_json:
                click.echo(json.dumps(event.to_dict()))
            elif not quiet:
                _note(bar, f"{event.path}  seed {event.params.seed}  {event.seconds:.1f} s{_scores(event)}", err=False)
            else:
                click.echo(event.path)
        elif isinstance(event, Recycle):
            _note(bar, f"steady: worker replaced after {event.images} image(s): {event.reason}")
        elif isinstance(event, WorkerDied):
            _note(bar, f"steady: the worker died (exit code {event.exitcode}) making image {event.index + 1}; "
                       "making it again with the same seed")  # fmt: skip

    try:
        outcome = run(resolved, cfg, on_event=on_event, catalog=catalog)
    finally:
        catalog.close()
        if bar is not None:
            bar.close()
    raise_failure(outcome)
    if outcome.stop_reason and not as_json:
        click.echo(f"steady: {'stopped' if outcome.saturated else 'done'}: {outcome.stop_reason}", err=True)
    if outcome.grid_path and not as_json:
        click.echo(f"grid: {outcome.grid_path}")
    if not as_json and not quiet:
        click.echo(
            f"{len(outcome.images)} image(s) from {resolved.model.name} [{resolved.model.hash}] "
            f"on {resolved.device}/{resolved.dtype} in {request.width}x{request.height}"
        )
        ranked = sorted((r for r in outcome.images if r.adherence is not None), key=lambda r: -r.adherence)
        if len(ranked) > 1:
            click.echo("best first (prompt adherence):")
            for r in ranked:
                click.echo(f"  {r.adherence:+.4f}  {r.path}")


def _scores(result) -> str:
    parts = []
    if result.adherence is not None:
        parts.append(f"adherence {result.adherence:+.4f}")
    if result.novelty is not None:
        parts.append(f"novelty {result.novelty:.3f}")
    return ("  " + ", ".join(parts)) if parts else ""


def _note(bar, text: str, err: bool = True) -> None:
    if bar is not None:
        bar.write(text)
    else:
        click.echo(text, err=err)


def register(group: click.Group) -> None:
    group.add_command(generate_command)
