"""Measurement runs through the one path, into a throwaway catalog and folder.

    with Scratch(settings(), SupervisorOptions(threads=2)) as scratch:
        made = scratch.run(GenerationRequest("a circle", n_images=20, seed=0))
        made.images[0].path, made.done[0].scores      # the PNG, and what the worker scored it

eval-tiny and eval-iterate measure what `steady generate` makes, so their images are made the
way it makes them (checked, planned, queued, rendered by a supervised worker, written, scored),
but they are measurements, not the user's pictures: they go to a temporary folder with a catalog
of its own, removed when the Scratch closes. One worker stays warm across every run.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from steady.catalog.db import open_catalog
from steady.config import Settings
from steady.jobs.protocol import ImageDone
from steady.jobs.runner import prepare, run
from steady.jobs.supervisor import JobOutcome, Supervisor, SupervisorOptions, raise_failure
from steady.params import GenerationRequest, GenerationResult
from steady.prompts.variants import Variant


@dataclass
class Made:
    """A finished scratch run: its recorded images and the worker's report of each, in order."""

    outcome: JobOutcome
    done: list[ImageDone] = field(default_factory=list)

    @property
    def images(self) -> list[GenerationResult]:
        return self.outcome.images


class Scratch:
    def __init__(self, cfg: Settings, options: SupervisorOptions | None = None):
        self.cfg = cfg
        self.folder = Path(tempfile.mkdtemp(prefix="steady-scratch-"))
        self.catalog = open_catalog(self.folder / "catalog.db")
        self.supervisor = Supervisor(self.catalog, options, cfg=cfg)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.supervisor.close()
        self.catalog.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, request: GenerationRequest, variants: tuple[Variant, ...] | None = None,
            on_event: Callable[[object], None] | None = None) -> Made:  # fmt: skip
        """Make ``request``'s images (``variants``: per-image prompt/seed overrides); raises when
        the run fails."""
        request = dataclasses.replace(request, out_dir=str(self.folder / "images"),
                                      max_images=max(request.max_images, len(variants or ()), request.n_images))  # fmt: skip
        made = Made(JobOutcome(0, 0, "", []))

        def listen(event: object) -> None:
            if isinstance(event, ImageDone):
                made.done.append(event)
            if on_event is not None:
                on_event(event)

        resolved = prepare(request, self.cfg, gpus=self.supervisor.gpus, variants=variants)
        made.outcome = run(resolved, self.cfg, on_event=listen, supervisor=self.supervisor)
        raise_failure(made.outcome)
        return made
