"""From a GenerationRequest to finished images through the durable queue and the worker.

    outcome = run_in_worker(request, on_event=print)

1. check the request and the model (steady.engine.check_and_plan: bad input is refused here,
   before any process starts); 2. plan memory for this machine (steady.worker.planner: a job
   that cannot fit is refused with what would); 3. enqueue the job (run + job rows);
4. the supervisor claims it and has the worker make each image; 5. the outcome says how it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from steady.catalog.db import Catalog, open_catalog
from steady.config import Settings
from steady.config import settings as current_settings
from steady.errors import BadInput
from steady.jobs.queue import JobQueue, JobRecord
from steady.jobs.supervisor import JobOutcome, Supervisor, SupervisorOptions
from steady.params import GenerationRequest, resolve_seed


def memory_plan(plan: Any, request: GenerationRequest) -> dict[str, Any]:
    """The planner's strategy for one image of this request on this machine, as a dict."""
    from steady.worker.machine import probe_machine
    from steady.worker.planner import InsufficientMemory, footprint_from_info
    from steady.worker.planner import plan as make_plan

    machine = probe_machine(torch_gpu=plan.device != "cpu", cpu_sample_s=0.2)
    try:
        chosen = make_plan(footprint_from_info(plan.info), machine, width=plan.width, height=plan.height, batch=1,
                           device=plan.device, dtype=plan.dtype, guidance=request.cfg_scale > 1.0)  # fmt: skip
    except InsufficientMemory as exc:
        # We always render one image at a time, so "batch_size" is the run's per-image cost.
        if exc.argument == "batch_size":
            raise BadInput("n_images", request.n_images, exc.why) from exc
        raise
    return chosen.to_dict()


def submit(request: GenerationRequest, catalog: Catalog, cfg: Settings | None = None,
           plan_memory: bool = True, plan: Any = None, claim: bool = False) -> JobRecord:  # fmt: skip
    """Steps 1-3: check, plan, and record a queued job. Raises BadInput before writing anything.
    ``plan``: the caller's steady.engine.check_and_plan result for this request, if it has one."""
    from steady.engine import check_and_plan, image_params

    cfg = cfg or current_settings()
    plan = plan or check_and_plan(request, cfg)
    if cfg.scorer != "model" and not Path(cfg.scorer).is_dir():
        raise BadInput("scorer", cfg.scorer, f"(in {cfg.config_path}) is not a folder; give a local CLIP model "
                                             "folder, or \"model\" to score with the generating model")  # fmt: skip
    mem = memory_plan(plan, request) if plan_memory else None
    if mem is not None:
        plan.device, plan.dtype = mem["device"], mem["dtype"]
    params = image_params(request, plan, seed=resolve_seed(request.seed))
    if request.allow_pickle:
        params.extra = {**(params.extra or {}), "allow_pickle": True}
    from steady.scoring.novelty import SaturationRule
    from steady.variants import axes_of, expand

    stop_rule = SaturationRule().to_dict() if request.until_saturated else None
    # Wildcards and X/Y grids: each image's own prompt/settings (a grid also sets how many images).
    variants = expand(request, params.seed, cfg.home / "wildcards")
    stored = None
    if variants:
        if request.x_axis:
            request.n_images = len(variants)
        stored = {"axes": [a.to_dict() for a in axes_of(request)], "variants": [v.to_dict() for v in variants]}
    return JobQueue(catalog).enqueue(request, params, str(plan.model_path), str(plan.out_dir), mem, stop_rule, stored,
                                     claim=claim)  # fmt: skip


def run_in_worker(
    request: GenerationRequest,
    cfg: Settings | None = None,
    on_event: Callable[[object], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    options: SupervisorOptions | None = None,
    catalog: Catalog | None = None,
    supervisor: Supervisor | None = None,
    plan: Any = None,
) -> JobOutcome:
    """Steps 1-5 for one request; reuses ``supervisor`` (and its warm worker) when given."""
    cfg = cfg or current_settings()
    own_catalog = catalog is None and supervisor is None
    catalog = supervisor.catalog if supervisor is not None else (catalog or open_catalog(cfg.db_path))
    try:
        # Claimed as it is written: a server sharing this catalog must not pick it up.
        job = submit(request, catalog, cfg, plan=plan, claim=True)
        if supervisor is not None:
            return supervisor.run(job, on_event, should_stop)
        with Supervisor(catalog, options) as sup:
            return sup.run(job, on_event, should_stop)
    finally:
        if own_catalog:
            catalog.close()
