"""Upscale jobs: each source image becomes a one-image run, made by the supervised worker.

    outcomes = upscale(UpscaleRequest(("a.png",), "4x-UltraSharp", 4.0), settings(), on_event=print)

    1 check    the images (decoded, not bombs), the upscaler (found, hashed), the device
               (steady.request.upscale): bad input is refused before anything is written
    2 plan     each image's tiles for the memory there is (steady.request.upscale.plan_tiles)
    3 queue    a run and a durable job per image, whose image params carry ``extra["postprocess"]``
               (the upscaler, the scale, the tiles, the source's path, hash and catalog row)
    4 make     the supervisor sends the job's RenderImage to the worker, which upscales instead of
               generating (steady.worker.upscale: load > read > upscale > write)
    5 record   the new image's row, with its lineage; the outcome says how the run ended

A run's prompt and parameters are its source's (from the source's catalog row or PNG), so the
upscaled image sits in its prompt's history beside the image it came from. The job goes through
the same queue and supervisor as a generation: a worker that dies is replaced and the upscale
made again, a cancel stops it between tiles, `steady resume RUN` finishes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from steady.catalog.db import Catalog, open_catalog
from steady.config import Settings, settings
from steady.jobs.queue import JobQueue, JobRecord
from steady.jobs.supervisor import JobOutcome, Supervisor, SupervisorOptions
from steady.request.upscale import ResolvedUpscale, UpscaleRequest, check_upscale


def prepare_upscale(request: UpscaleRequest, cfg: Settings, catalog: Catalog, gpus: list | None = None) -> ResolvedUpscale:
    """Steps 1-2: the checked and planned request; raises BadInput before writing anything."""
    return check_upscale(request, cfg, catalog, gpus)


def submit_upscale(resolved: ResolvedUpscale, catalog: Catalog, claim: bool = False) -> list[JobRecord]:
    """Step 3: a queued (or, with ``claim``, running) one-image job per source image."""
    queue = JobQueue(catalog)
    jobs = []
    for index in range(len(resolved.sources)):
        params = resolved.image_params(index)
        variants = None
        if params.seed is None:  # an imported source that does not say its seed: recorded as unknown
            variants = {"axes": [], "variants": [{"overrides": {"seed": None}}]}
            params = dataclasses.replace(params, seed=0)  # the job's base seed (a column that must be set)
        request = params.request(n_images=1, max_images=1)
        model_path = resolved.upscaler.path or resolved.upscaler.name
        jobs.append(queue.enqueue_params(request, params, model_path, str(resolved.out_dir), variants=variants,
                                         claim=claim))  # fmt: skip
    return jobs


def upscale(
    request: UpscaleRequest | ResolvedUpscale,
    cfg: Settings | None = None,
    on_event: Callable[[object], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    options: SupervisorOptions | None = None,
    catalog: Catalog | None = None,
    supervisor: Supervisor | None = None,
) -> list[JobOutcome]:
    """Steps 1-5: every image of ``request`` upscaled and recorded; one outcome per image made or
    tried. After one that fails or is cancelled, the rest are not started (their jobs end so)."""
    cfg = cfg or settings()
    own_catalog = catalog is None and supervisor is None
    catalog = supervisor.catalog if supervisor is not None else (catalog or open_catalog(cfg.db_path))
    try:
        resolved = request if isinstance(request, ResolvedUpscale) else prepare_upscale(request, cfg, catalog)
        jobs = submit_upscale(resolved, catalog, claim=True)
        outcomes: list[JobOutcome] = []
        sup = supervisor or Supervisor(catalog, options, cfg=cfg)
        try:
            for i, job in enumerate(jobs):
                outcome = sup.run(job, on_event, should_stop)
                outcomes.append(outcome)
                if outcome.state != "done":
                    for rest in jobs[i + 1:]:
                        sup.queue.finish(rest.id, "cancelled" if outcome.state == "cancelled" else "failed",
                                         f"not started: an earlier image of the request ended {outcome.state}")  # fmt: skip
                    break
        finally:
            if supervisor is None:
                sup.close()
        return outcomes
    finally:
        if own_catalog:
            catalog.close()
