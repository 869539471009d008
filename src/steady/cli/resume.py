"""`steady resume RUN`: make the images a stopped run is missing.

    steady resume 12          # run 12 was interrupted (Ctrl-C, or its program was killed)

A run stops before it finishes when its command is interrupted or killed, or when it is cancelled
or fails; nothing resumes it by itself (not another run, not `steady serve`). This does, when asked:
the same model, settings and seeds, under the same file names, only the images that have no row
(a PNG the kill left before its row is recorded first, not made again). `steady history` shows
each run's status and how many of its images were made.
"""

from __future__ import annotations

from pathlib import Path

import click

from steady.errors import BadInput


@click.command("resume")
@click.argument("run", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image instead of text.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def resume_command(run: int, as_json: bool, quiet: bool) -> None:
    """Make the missing images of RUN, a run that was interrupted, cancelled or failed (same seeds)."""
    from steady.catalog import open_catalog
    from steady.cli.generate import steps_run
    from steady.cli.runview import RunView, check_at_startup, make, report, steps_before
    from steady.config import settings
    from steady.jobs.queue import JobQueue
    from steady.models.detect import inspect_model
    from steady.request.check import prepare_out_dir

    cfg = settings()
    if not cfg.db_path.exists():  # nothing is written on refusal, not even an empty catalog
        raise BadInput("run", run, f"no such run (no catalog at {cfg.db_path} yet)")
    catalog = open_catalog(cfg.db_path)
    try:
        queue = JobQueue(catalog)
        job = queue.job_of_run(run)
        # Its program may have died: interrupted now; what it left, recorded or removed.
        check_at_startup(catalog, cfg, {Path(job.out_dir)}, quiet=as_json)
        job = queue.get(job.id)
        if job.state in ("done", "running"):
            queue.resume(job.id)  # refuses, saying why
        if "postprocess" not in job.params.get("extra", {}):  # an upscale's model is checked by its worker
            inspect_model(job.model_path)  # still there, still readable: ModelError (exit 2) otherwise
        missing = queue.missing_indices(job)
        size = job.params.get("width", 512) * job.params.get("height", 512) * 3 + 4096
        prepare_out_dir(Path(job.out_dir), needed_bytes=len(missing) * size)
        job = queue.resume(job.id)
        upscale = "postprocess" in job.params.get("extra", {})  # its progress counts tiles, not steps
        steps_of = (lambda i: job.image_params(i).extra["postprocess"].get("tiles", 1)) if upscale else \
            (lambda i: steps_run(job.image_params(i)))
        view = RunView(steps_before(job.n_images, steps_of, set(missing)), as_json, quiet,
                       **({"unit": "tile", "label": "upscale"} if upscale else {}))  # fmt: skip
        outcome = make(job, catalog, cfg, view)
        made = job.n_images - len(queue.missing_indices(job))
    finally:
        catalog.close()
    report(outcome, as_json, quiet, f"{len(outcome.images)} image(s) made; run {run} has {made} of its {job.n_images}")


def register(group: click.Group) -> None:
    group.add_command(resume_command)
