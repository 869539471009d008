"""From a request to recorded images: the one path every way in takes.

    outcome = run(GenerationRequest("a red circle", n_images=4), settings(), on_event=print)

    1 check    the request and its model (steady.request.check): bad input is refused here,
               before anything is written or any process starts
    2 plan     memory for this machine (steady.request.plan): a job that cannot fit is refused
               with what would
    3 queue    a durable job: run and job rows in the catalog (steady.jobs.queue)
    4 make     the supervisor has the worker make each image: load > encode > denoise > decode >
               write > score, numbered once in steady.worker.recipe (steady.jobs.supervisor)
    5 record   each image's row as the worker reports it; the outcome says how the run ended

The CLI, the page, our API, the A1111 API, `steady.generate()`, `steady bench`, eval-tiny and
eval-iterate all call ``submit`` (steps 1-3) and a Supervisor (steps 4-5), here or in the
server's generation thread (steady.web.studio).
"""

from __future__ import annotations

from collections.abc import Callable

from steady.catalog.db import Catalog, open_catalog
from steady.config import Settings, settings
from steady.jobs.queue import JobQueue, JobRecord
from steady.jobs.supervisor import JobOutcome, Supervisor, SupervisorOptions
from steady.params import GenerationRequest
from steady.prompts.variants import Variant
from steady.request.check import Resolved, check
from steady.request.machine import Gpu
from steady.request.plan import plan
from steady.scoring.novelty import SaturationRule


def prepare(request: GenerationRequest, cfg: Settings, plan_memory: bool = True, gpus: list[Gpu] | None = None,
            variants: tuple[Variant, ...] | None = None) -> Resolved:  # fmt: skip
    """Steps 1-2: the checked and planned request; raises BadInput before writing anything."""
    resolved = check(request, cfg, variants)
    return plan(resolved, gpus) if plan_memory else resolved


def submit(resolved: Resolved, catalog: Catalog, claim: bool = False) -> JobRecord:
    """Step 3: record a queued job for a prepared request."""
    stop_rule = SaturationRule().to_dict() if resolved.request.until_saturated else None
    return JobQueue(catalog).enqueue(resolved, stop_rule, claim=claim)


def run(
    request: GenerationRequest | Resolved,
    cfg: Settings | None = None,
    on_event: Callable[[object], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    options: SupervisorOptions | None = None,
    catalog: Catalog | None = None,
    supervisor: Supervisor | None = None,
) -> JobOutcome:
    """Steps 1-5 for one request (or one already prepared); reuses ``supervisor`` (and its warm
    worker) when given. The job is claimed as it is written: a server sharing this catalog must
    not pick it up."""
    cfg = cfg or settings()
    resolved = request if isinstance(request, Resolved) else prepare(request, cfg)
    own_catalog = catalog is None and supervisor is None
    catalog = supervisor.catalog if supervisor is not None else (catalog or open_catalog(cfg.db_path))
    try:
        job = submit(resolved, catalog, claim=True)
        if supervisor is not None:
            return supervisor.run(job, on_event, should_stop)
        with Supervisor(catalog, options, cfg=cfg) as sup:
            return sup.run(job, on_event, should_stop)
    finally:
        if own_catalog:
            catalog.close()
