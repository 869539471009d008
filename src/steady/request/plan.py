"""Plan a checked request's memory on this machine (torch-free): which strategy each image runs
with, or a refusal that says what would fit (steady.request.planner has the ladder and the sums).

    resolved = plan(check(request, cfg))          # resolved.memory: the planner's Plan
    resolved = plan(check(request, cfg), gpus)    # with the GPUs a running worker reported

The plan may change the device and dtype (a CPU job that does not fit in float32 runs in
bfloat16); the new Resolved says so, and every image records what it ran with.
"""

from __future__ import annotations

import dataclasses

from steady.errors import BadInput
from steady.request.check import Resolved
from steady.request.machine import Gpu, probe_machine
from steady.request.planner import InsufficientMemory, footprint_from_info, with_kept_vae
from steady.request.planner import plan as make_plan


def plan(resolved: Resolved, gpus: list[Gpu] | None = None) -> Resolved:
    """A new Resolved with its memory plan (``gpus``: as a worker reported them, if one has)."""
    from steady.config import settings

    cfg = settings()
    r = resolved.request
    machine = probe_machine(gpus=gpus, cpu_sample_s=0.2, probe_gpus=resolved.device != "cpu")
    try:
        # --dtype auto stays auto for the planner: on a CPU without native bfloat16 it falls back from
        # float32 to bfloat16 (half the memory) when float32 does not fit.
        dtype = "auto" if r.dtype == "auto" else resolved.dtype
        # A hires fix's second pass is the larger one: the plan is for it (the VAE tiled where it needs).
        width, height = (resolved.hires.width, resolved.hires.height) if resolved.hires else (r.width, r.height)
        footprint = footprint_from_info(resolved.model.info)
        if resolved.extra.get("vae"):  # another VAE beside the model's own
            footprint = with_kept_vae(footprint)
        chosen = make_plan(footprint, machine, width=max(width, r.width),
                           height=max(height, r.height), batch=1, device=resolved.device, dtype=dtype,
                           guidance=r.cfg_scale > 1.0, vram_limit=cfg.vram_limit)  # fmt: skip
    except InsufficientMemory as exc:
        # We always render one image at a time, so "batch_size" is the run's per-image cost.
        if exc.argument == "batch_size":
            raise BadInput("n_images", r.n_images, exc.why) from exc
        raise
    if r.backend == "openvino":  # its conversion's or its compile's peak, beyond torch's (steady.request.openvino)
        from steady.request.openvino import check_openvino

        check_openvino(resolved, chosen, cfg.cache_dir)
    return dataclasses.replace(resolved, device=chosen.device, dtype=chosen.dtype, memory=chosen)
