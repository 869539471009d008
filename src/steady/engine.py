"""One generation run, in this process: the main job of the project, as numbered steps.

    1 check inputs  ->  2 plan (device, dtype, output folder)  ->  3 load the model
    ->  for each image: 4 encode + denoise + decode  ->  5 write the PNG atomically
    ->  6 record the catalog row  ->  7 finish the run

`steady generate` runs steps 1-2 here and steps 3-7 through the supervised worker
(steady.jobs.runner, steady.worker.main); `iter_request` runs all of them in the calling process
(the library API and `steady bench`). No torch import at module level, so that the CLI starts
fast and errors in the input are reported before any heavy import.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import steady
from steady.config import Settings
from steady.config import settings as current_settings
from steady.errors import OutputError
from steady.jobs.protocol import Progress
from steady.params import DEFAULT_CFG_SCALE, GenerationRequest, GenerationResult, ImageParams, resolve_seed

log = logging.getLogger(__name__)

# Free disk space we insist on beyond the images themselves: a full disk mid-run is the one
# failure that can take other programs down with us.
DISK_RESERVE_BYTES = 64 * 1024 * 1024


@dataclass
class Plan:
    """What step 2 decided: where the model is, how it runs, where images go."""

    model_path: Path
    model_name: str
    model_hash: str
    model_arch: str
    device: str
    dtype: str
    width: int
    height: int
    out_dir: Path
    info: Any  # steady.models.detect.ModelInfo


def check_and_plan(request: GenerationRequest, cfg: Settings | None = None) -> Plan:
    """Steps 1 and 2: everything that can be refused is refused here, before any load."""
    from steady.models.default import (
        EMBEDDED_CFG_SCALE,
        EMBEDDED_MODEL_NAME,
        embedded_model_path,
        resolve_default_model,
    )
    from steady.models.detect import inspect_model, pickle_refusal
    from steady.models.hashing import short_hash
    from steady.models.resolve import find_model

    cfg = cfg or current_settings()
    # 1. Check the parameters, then the model file (existence, format, architecture).
    request.check()
    model_path = find_model(request.model, cfg) if request.model else resolve_default_model(cfg)
    info = inspect_model(model_path)
    embedded = Path(model_path) == embedded_model_path()
    if embedded:
        info = dataclasses.replace(info, name=EMBEDDED_MODEL_NAME)
    if request.cfg_scale is None:  # the model's own CFG, written into the request like every later step reads it
        request.cfg_scale = EMBEDDED_CFG_SCALE if embedded else DEFAULT_CFG_SCALE
    if info.format == "pickle" and not request.allow_pickle:
        raise pickle_refusal(info)
    width = request.width or info.native_size
    height = request.height or info.native_size
    # 2. Plan: device and dtype, decided without torch (the full memory planner lives with the
    #    worker), output folder.
    from steady.devices import choose_device, choose_dtype

    device = choose_device(request.device)
    dtype = choose_dtype(request.dtype, device)
    out_dir = Path(request.out_dir).expanduser() if request.out_dir else cfg.outputs_dir / _dt.date.today().isoformat()
    prepare_out_dir(out_dir, needed_bytes=request.n_images * (width * height * 3 + 4096))
    return Plan(
        model_path=model_path,
        model_name=info.name,
        model_hash=short_hash(model_path, cfg),
        model_arch=info.arch,
        device=device,
        dtype=dtype,
        width=width,
        height=height,
        out_dir=out_dir,
        info=info,
    )


def prepare_out_dir(out_dir: Path, needed_bytes: int) -> None:
    """Create the folder and prove it is writable and has room, or raise OutputError (`out`)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".steady-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError("out", str(out_dir), f"cannot write there ({exc.strerror or exc})") from exc
    free = shutil.disk_usage(out_dir).free
    if free < needed_bytes + DISK_RESERVE_BYTES:
        raise OutputError(
            "out",
            str(out_dir),
            f"disk is full: {free // 2**20} MiB free, need about {(needed_bytes + DISK_RESERVE_BYTES) // 2**20} MiB",
        )


def image_params(request: GenerationRequest, plan: Plan, seed: int) -> ImageParams:
    return ImageParams(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        steps=request.steps,
        cfg_scale=float(request.cfg_scale),
        width=plan.width,
        height=plan.height,
        seed=seed,
        sampler=request.sampler,
        clip_skip=request.clip_skip,
        model_name=plan.model_name,
        model_hash=plan.model_hash,
        model_arch=plan.model_arch,
        device=plan.device,
        dtype=plan.dtype,
        steady_version=steady.__version__,
    )


def iter_request(
    request: GenerationRequest,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    catalog: Any = None,
    cfg: Settings | None = None,
    loaded: Any = None,
    plan: Plan | None = None,
) -> Iterator[GenerationResult]:
    """Yield each image as soon as it is written and recorded."""
    import psutil

    from steady.catalog.db import open_catalog
    from steady.images.pngmeta import write_png
    from steady.worker.loader import load_pipeline
    from steady.worker.pipeline import DTYPES, Interrupted, quiet_libraries, render

    cfg = cfg or current_settings()
    plan = plan or check_and_plan(request, cfg)
    own_catalog = catalog is None
    catalog = catalog or open_catalog(cfg.db_path)
    process = psutil.Process()
    run_id = None
    status = "failed"
    try:
        # 3. Load (or reuse) the pipeline on the planned device.
        quiet_libraries()
        pipe = loaded or load_pipeline(
            plan.info, device=plan.device, dtype=DTYPES[plan.dtype], allow_pickle=request.allow_pickle
        )
        base_seed = resolve_seed(request.seed)
        run_id = catalog.start_run(request, plan.model_name, plan.model_hash)
        for index in range(request.n_images):
            if should_stop is not None and should_stop():
                status = "cancelled"
                return
            params = image_params(request, plan, seed=(base_seed + index) % 2**32)
            peak_rss = process.memory_info().rss
            started = time.perf_counter()

            def on_step(step, index=index):
                nonlocal peak_rss
                rss = process.memory_info().rss
                peak_rss = max(peak_rss, rss)
                if on_progress is not None:
                    on_progress(
                        Progress(run_id, index, request.n_images, step.step, step.steps, step.seconds_per_step, rss)
                    )
                return not (should_stop is not None and should_stop())

            # 4. Encode, denoise, decode.
            try:
                image = render(pipe, params, plan.device, on_step=on_step)
            except Interrupted:
                status = "cancelled"
                return
            seconds = time.perf_counter() - started
            # 5. Write the PNG atomically, then 6. record its row: a crash in between leaves a
            # complete file that the startup reconcile records from its metadata.
            path = plan.out_dir / f"{run_id:05d}-{index:02d}-{params.seed}.png"
            write_png(image, path, params)
            del image
            image_id = catalog.add_image(run_id, path, index, params, seconds, peak_rss_bytes=peak_rss)
            yield GenerationResult(
                path=str(path), params=params, index=index, run_id=run_id, image_id=image_id,
                seconds=seconds, peak_rss_bytes=peak_rss,
            )
        status = "done"
    except (KeyboardInterrupt, GeneratorExit):
        # Ctrl-C, or the consumer stopped asking for images: the run was cancelled, not failed.
        status = "cancelled"
        raise
    finally:
        # 7. Finish the run whatever happened, so the catalog says how it ended.
        if run_id is not None:
            catalog.finish_run(run_id, status)
        if own_catalog:
            catalog.close()


def run_request(request: GenerationRequest, **kwargs: Any) -> list[GenerationResult]:
    return list(iter_request(request, **kwargs))
