"""`steady generate PROMPT`: a small run of images from one prompt, written as each finishes."""

from __future__ import annotations

import json

import click

from steady.params import (
    DEFAULT_MAX_IMAGES,
    DEVICES,
    DTYPES,
    SAMPLERS,
    GenerationRequest,
)


@click.command("generate")
@click.argument("prompt")
@click.option("-N", "--negative", "negative_prompt", default="", help="Negative prompt.")
@click.option("-n", "--images", "n_images", type=int, default=1, show_default=True, help="Images in this run.")
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--cfg", "cfg_scale", type=float, default=None,
              help="CFG scale; default: the model's (7, or 5 for the embedded model, the scale it was trained at).")
@click.option("-W", "--width", type=int, default=None, help="Multiple of 8; default: the model's native size.")
@click.option("-H", "--height", type=int, default=None, help="Multiple of 8; default: the model's native size.")
@click.option("--seed", type=int, default=-1, show_default=True, help="-1 draws a random seed (it is recorded).")
@click.option("--sampler", default="Euler a", show_default=True, help="One of: " + ", ".join(SAMPLERS))
@click.option("--clip-skip", type=int, default=1, show_default=True, help="A1111 convention: 2 = penultimate layer.")
@click.option("-m", "--model", default="", help="Name in the models folder, or a path. Default: the embedded model.")
@click.option("--device", default="auto", show_default=True, help="/".join(DEVICES) + " or cuda:N")
@click.option("--dtype", default="auto", show_default=True, help="/".join(DTYPES))
@click.option("--out", "out_dir", default=None, help="Output folder (default: STEADY_HOME/outputs/YYYY-MM-DD).")
@click.option("--max-images", type=int, default=DEFAULT_MAX_IMAGES, show_default=True, help="Cap on images per prompt.")
@click.option("--x", "x_axis", default="", metavar="'KIND: v1, v2'",
              help="X/Y grid axis: Prompt S/R, Seed, CFG, Steps or Sampler, e.g. --x 'Prompt S/R: red, blue'.")
@click.option("--y", "y_axis", default="", metavar="'KIND: v1, v2'", help="Second grid axis (with --x).")
@click.option("--until-saturated", is_flag=True,
              help="Keep going (up to -n, or --max-images when -n is 1) until the run stops producing new patterns.")
@click.option("--allow-pickle", is_flag=True, help="Load .ckpt/.pt pickles (with torch.load weights_only=True).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image instead of text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def generate_command(as_json: bool, quiet: bool, **options) -> None:
    """Generate a small run of images from PROMPT (each PNG carries its parameters)."""
    from steady.catalog import open_catalog, reconcile
    from steady.config import settings
    from steady.engine import check_and_plan
    from steady.jobs.protocol import Progress, Recycle
    from steady.jobs.runner import run_in_worker
    from steady.jobs.supervisor import WorkerDied, raise_failure
    from steady.params import GenerationResult

    request = GenerationRequest(**options)
    # Refuse bad input before the progress bar and before any process starts.
    cfg = settings()
    plan = check_and_plan(request, cfg)
    catalog = open_catalog(cfg.db_path)
    # Startup check: after a crash, files and rows agree again before anything new is written.
    for folder in {cfg.outputs_dir, plan.out_dir}:
        repaired = reconcile(catalog, folder)
        fixed = repaired.temp_files_removed + repaired.images_recorded + repaired.rows_removed
        if fixed and not as_json:
            click.echo(
                f"catalog repaired in {folder}: {repaired.images_recorded} image(s) recorded, "
                f"{repaired.rows_removed} row(s) of missing files removed, "
                f"{repaired.temp_files_removed} temp file(s) deleted", err=True,
            )
    bar = None if quiet or as_json else _progress_bar(request.n_images * request.steps)
    last = [0]

    def on_event(event: object) -> None:
        if isinstance(event, Progress) and bar is not None:
            done = event.image_index * event.steps + event.step
            bar.update(done - last[0])
            last[0] = done
            vram = f", VRAM {event.vram_bytes / 2**30:.2f} GiB" if event.vram_bytes else ""
            bar.set_postfix_str(
                f"image {event.image_index + 1}/{event.n_images}, "
                f"{event.seconds_per_step:.2f} s/step, RSS {event.rss_bytes / 2**30:.2f} GiB{vram}"
            )
        elif isinstance(event, GenerationResult):
            if as_json:
                click.echo(json.dumps(event.to_dict()))
            elif bar is not None:
                bar.write(f"{event.path}  seed {event.params.seed}  {event.seconds:.1f} s{_scores(event)}")
            else:
                click.echo(event.path)
        elif isinstance(event, Recycle):
            _note(bar, f"steady: worker replaced after {event.images} image(s): {event.reason}")
        elif isinstance(event, WorkerDied):
            _note(bar, f"steady: the worker died (exit code {event.exitcode}) making image {event.index + 1}; "
                       "making it again with the same seed")  # fmt: skip

    try:
        outcome = run_in_worker(request, cfg, on_event=on_event, catalog=catalog, plan=plan)
    finally:
        catalog.close()
        if bar is not None:
            bar.close()
    raise_failure(outcome)
    if outcome.stop_reason and not as_json:
        click.echo(f"steady: stopped: {outcome.stop_reason}", err=True)
    if outcome.grid_path and not as_json:
        click.echo(f"grid: {outcome.grid_path}")
    if not as_json and not quiet:
        click.echo(
            f"{len(outcome.images)} image(s) from {plan.model_name} [{plan.model_hash}] "
            f"on {plan.device}/{plan.dtype} in {plan.width}x{plan.height}"
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


def _note(bar, text: str) -> None:
    if bar is not None:
        bar.write(text)
    else:
        click.echo(text, err=True)


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)


def register(group: click.Group) -> None:
    group.add_command(generate_command)
