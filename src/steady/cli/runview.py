"""Making a run from the command line, for `steady generate` and `steady resume`: the startup
check, what is shown while the images are made, and how Ctrl-C stops a run.

    check_at_startup(catalog, cfg, {out_dir}, quiet)     # files and rows agree before anything new
    view = RunView(steps_before, as_json, quiet, warned)
    outcome = make(job, catalog, cfg, view)             # exits 130, with the resume command, if stopped
    report(outcome, as_json, quiet, summary="4 image(s) from ...")

Ctrl-C: the first stops the run at the image's next step (the worker discards it; one already made
is recorded), so the files and the rows agree when the command returns, and the run is
'interrupted'; a second stops the worker at once and removes what it left of its image.
Either way `steady resume RUN` makes the missing images later, with the same seeds.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from steady.cli.progress import progress


def check_at_startup(catalog: Any, cfg: Any, folders: set[Path], quiet: bool) -> None:
    """Runs whose program died are marked interrupted (said once, with how to resume them) and their
    unfinished temp files removed; then the catalog and the files in ``folders`` (and the outputs
    folder) are made to agree, as after any crash."""
    from steady.catalog import reconcile
    from steady.jobs.queue import JobQueue
    from steady.jobs.supervisor import remove_leftovers

    queue = JobQueue(catalog)
    folders = {cfg.outputs_dir, *folders}
    for job_id in queue.recover():
        job = queue.get(job_id)
        missing = queue.missing_indices(job)
        remove_leftovers(job, missing, finished=False)  # its owner is gone: nobody writes them now
        folders.add(Path(job.out_dir))
        click.echo(f"steady: run {job.run_id} was interrupted ({job.n_images - len(missing)} of {job.n_images} "
                   f"images made); `steady resume {job.run_id}` makes the rest", err=True)  # fmt: skip
    for folder in sorted(folders):
        repaired = reconcile(catalog, folder)
        fixed = repaired.temp_files_removed + repaired.images_recorded + repaired.rows_removed
        if fixed and not quiet:
            click.echo(
                f"catalog repaired in {folder}: {repaired.images_recorded} image(s) recorded, "
                f"{repaired.rows_removed} row(s) of missing files removed, "
                f"{repaired.temp_files_removed} temp file(s) deleted", err=True,
            )  # fmt: skip


class RunView:
    """The progress bar (made at the first step, so the worker's start-up is not counted as steps)
    and one line per image, per recycle, per dead worker; JSON lines with ``as_json``."""

    def __init__(self, steps_before: list[int], as_json: bool, quiet: bool, warned: set[str] | None = None,
                 unit: str = "step", label: str = "generate"):  # fmt: skip
        self.before, self.as_json, self.quiet = steps_before, as_json, quiet
        self.unit, self.label = unit, label  # an upscale counts tiles (steady upscale)
        self.warned = warned if warned is not None else set()
        self.bar: Any = None
        self.last = 0

    def on_event(self, event: object) -> None:
        from steady.jobs.protocol import Progress, Recycle
        from steady.jobs.supervisor import WorkerDied
        from steady.params import GenerationResult

        if isinstance(event, Progress) and not (self.quiet or self.as_json):
            if self.bar is None:
                self.bar = progress(self.before[-1], self.unit, self.label)
            done = self.before[event.image_index] + event.step
            self.bar.update(done - self.last)
            self.last = done
            vram = f", VRAM {event.vram_bytes / 2**30:.2f} GiB" if event.vram_bytes else ""
            self.bar.set_postfix_str(
                f"image {event.image_index + 1}/{event.n_images}, "
                f"{event.seconds_per_step:.2f} s/{self.unit}, RSS {event.rss_bytes / 2**30:.2f} GiB{vram}"
            )
        elif isinstance(event, GenerationResult):
            for line in event.params.extra.get("warnings", []):  # what the worker could not apply
                if line not in self.warned:
                    self.warned.add(line)
                    self.note(f"steady: warning: {line}")
            if self.as_json:
                click.echo(json.dumps(event.to_dict()))
            elif not self.quiet:
                self.note(f"{event.path}  seed {event.params.seed}  {event.seconds:.1f} s{_scores(event)}", err=False)
            else:
                click.echo(event.path)
        elif isinstance(event, Recycle):
            self.note(f"steady: worker replaced after {event.images} image(s): {event.reason}")
        elif isinstance(event, WorkerDied):
            self.note(f"steady: the worker died (exit code {event.exitcode}) making image {event.index + 1}; "
                      "making it again with the same seed")  # fmt: skip

    def note(self, text: str, err: bool = True) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            click.echo(text, err=err)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make(job: Any, catalog: Any, cfg: Any, view: RunView) -> Any:
    """The job's missing images through a Supervisor (steps 4-5), Ctrl-C as the module says; the
    JobOutcome, unless the run was stopped: then the command exits 130 saying how to resume it."""
    from steady.jobs.queue import JobQueue
    from steady.jobs.supervisor import Supervisor

    try:
        with ctrl_c_stops(view.note) as stop, Supervisor(catalog, cfg=cfg) as sup:
            outcome = sup.run(job, view.on_event, stop.is_set, stopped="interrupted")
    except KeyboardInterrupt:
        outcome = None
    finally:
        view.close()
    if outcome is None or outcome.state == "interrupted":
        missing = len(JobQueue(catalog).missing_indices(job))
        click.echo(f"steady: interrupted: run {job.run_id} has {job.n_images - missing} of {job.n_images} images; "
                   f"`steady resume {job.run_id}` makes the rest", err=True)  # fmt: skip
        sys.exit(130)
    return outcome


def report(outcome: Any, as_json: bool, quiet: bool, summary: str) -> None:
    """After a run: a failure as its error (exit 1, or 2 for bad input), how a --until-saturated
    run ended, the grid, ``summary`` and the images best first."""
    from steady.jobs.supervisor import raise_failure

    raise_failure(outcome)
    if outcome.stop_reason and not as_json:
        click.echo(f"steady: {'stopped' if outcome.saturated else 'done'}: {outcome.stop_reason}", err=True)
    if outcome.grid_path and not as_json:
        click.echo(f"grid: {outcome.grid_path}")
    if not as_json and not quiet:
        click.echo(summary)
        ranked = sorted((r for r in outcome.images if r.adherence is not None), key=lambda r: -r.adherence)
        if len(ranked) > 1:
            click.echo("best first (prompt adherence):")
            for r in ranked:
                click.echo(f"  {r.adherence:+.4f}  {r.path}")


@contextmanager
def ctrl_c_stops(note: Any) -> Iterator[threading.Event]:
    """While the run is made: the first SIGINT sets the event (the supervisor's should_stop); a
    second raises KeyboardInterrupt as Python would. Outside the main thread (where no handler can
    be set) the event is only what the caller sets."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first_then_default(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        note("steady: stopping at the next step; the image being made is discarded (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, first_then_default)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _scores(result: Any) -> str:
    parts = []
    if result.adherence is not None:
        parts.append(f"adherence {result.adherence:+.4f}")
    if result.novelty is not None:
        parts.append(f"novelty {result.novelty:.3f}")
    return ("  " + ", ".join(parts)) if parts else ""


def steps_before(n_images: int, steps_of: Any, only: set[int] | None = None) -> list[int]:
    """Steps made before each image, and in all (a grid's Steps axis gives images different
    counts); ``only``: the images this command makes (a resumed run's missing ones)."""
    before = [0]
    for i in range(n_images):
        before.append(before[-1] + (steps_of(i) if only is None or i in only else 0))
    return before
