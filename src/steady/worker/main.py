"""The worker process: loads a model, renders one image per RenderImage, writes it, says so.

Started by steady.jobs.supervisor with the spawn method; ``worker_main`` is its entry point.
Three threads: the main one renders; a reader takes messages off the pipe (so a Cancel reaches
a running image); a heartbeat reports this process's memory once a second. The worker never
touches the catalog: it writes each PNG atomically (temp file, fsync, rename) and the supervisor
records the row, so a worker killed at any point leaves either a complete file or none.

At most one pipeline is held; after every image the worker drops its references and runs the
cheap hygiene (gc, glibc malloc_trim, CUDA empty_cache) so what is left is what it needs.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from steady.jobs.protocol import (
    Cancel,
    Failure,
    Heartbeat,
    ImageDone,
    Progress,
    Ready,
    RenderImage,
    Shutdown,
    WorkerOptions,
    with_warnings,
)
from steady.sysmem import malloc_trim
from steady.worker.recipe import Held
from steady.worker.upscale import HeldUpscaler, is_upscale, upscale_image


@dataclass
class _State:
    """Everything the worker holds between images (one instance, owned by worker_main)."""

    held: Held = field(default_factory=Held)
    upscaler: HeldUpscaler = field(default_factory=HeldUpscaler)  # upscale jobs' model (steady.worker.upscale)
    busy: bool = False
    leaked: list[bytearray] = field(default_factory=list)  # fault injection only
    oom_injected: set[int] = field(default_factory=set)


class _Channel:
    """The pipe, with a lock so the heartbeat and the main thread do not interleave sends."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: object) -> None:
        with self.lock:
            self.conn.send(message)


def worker_main(conn: Any, options: WorkerOptions) -> None:
    # Ctrl-C reaches the whole process group: the supervisor decides what to do with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    # OpenMP threads that wait at a barrier sleep instead of spinning. The worker uses every physical
    # core whatever the load (the pixels depend on the thread count); spinning threads on a core
    # another program holds took the embedded model from 2 s to 22 s an image here, sleeping ones
    # do not. Set before torch loads its OpenMP runtime, which reads it once.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from steady.worker.gpus import torch_gpus
    from steady.worker.pipeline import quiet_libraries

    quiet_libraries()
    if options.threads:
        torch.set_num_threads(options.threads)
    chan, inbox, cancel = _Channel(conn), queue.Queue(), threading.Event()
    state = _State()
    threading.Thread(target=_read, args=(conn, inbox, cancel), name="steady-worker-reader", daemon=True).start()
    threading.Thread(target=_heartbeat, args=(chan, state, options.heartbeat_s), name="steady-worker-heartbeat",
                     daemon=True).start()  # fmt: skip
    gpus = torch_gpus()
    chan.send(Ready(pid=os.getpid(), torch_threads=torch.get_num_threads(), device_count=len(gpus), gpus=gpus))
    while True:
        message = inbox.get()
        if isinstance(message, Shutdown) or message is None:
            return
        state.busy = True
        try:
            if is_upscale(message.params):
                chan.send(upscale_image(message, state.upscaler, chan.send, cancel.is_set))
            else:
                state.upscaler.drop()  # an upscale's model is not kept through a generation
                chan.send(_render_one(message, state, chan, cancel))
        finally:
            state.busy = False
        if options.hygiene:
            state.held.freeze()  # once per pipeline: the collections below skip it
            gc.collect()
            malloc_trim()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _read(conn: Any, inbox: queue.Queue, cancel: threading.Event) -> None:
    """Messages in pipe order. The cancel flag is cleared here when a RenderImage arrives (not when
    the main thread starts it, which could swallow a Cancel sent right behind it), and a Cancel
    counts only for the job of the latest RenderImage (one sent as an image finished is stale)."""
    current: int | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            # The supervisor is gone: nobody will record what we make, so stop at once.
            os._exit(0)
        if isinstance(message, Cancel):
            if message.job_id == current:
                cancel.set()
            continue
        if isinstance(message, RenderImage):
            cancel.clear()
            current = message.job_id
        inbox.put(message)


def _heartbeat(chan: _Channel, state: _State, every: float) -> None:
    import psutil
    import torch

    from steady.worker.gpus import torch_gpus

    me = psutil.Process()
    while True:
        time.sleep(every)
        allocated = reserved = 0
        gpus = []
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
            gpus = torch_gpus()
        try:
            chan.send(Heartbeat(pid=os.getpid(), rss_bytes=me.memory_info().rss, torch_allocated=allocated,
                                torch_reserved=reserved, busy=state.busy, gpus=gpus))  # fmt: skip
        except (OSError, ValueError):
            return


def _render_one(job: RenderImage, state: _State, chan: _Channel, cancel: threading.Event) -> object:
    """One image through steady.worker.recipe's steps, reported as ImageDone or Failure."""
    import psutil
    import torch

    from steady.errors import BadInput, SteadyError
    from steady.worker import recipe
    from steady.worker.pipeline import Interrupted
    from steady.worker.strategy import run_with_oom_retry

    params, held, me = job.params, state.held, psutil.Process()
    try:
        # 1. Load, unless this pipeline is already resident.
        load_s = recipe.load(held, job.model_path, params, job.allow_pickle, placed_by_plan=job.plan is not None)
        if cancel.is_set():  # cancelled while the model loaded: there is no step to stop at
            raise Interrupted()
        cuda = params.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        peak_rss, started, events = me.memory_info().rss, time.perf_counter(), []

        def on_step(step: Any) -> bool:
            nonlocal peak_rss
            rss = me.memory_info().rss
            peak_rss = max(peak_rss, rss)
            vram = torch.cuda.memory_allocated() if cuda else 0
            chan.send(Progress(job.run_id, job.index, job.n_images, step.step, step.steps, step.seconds_per_step,
                               rss, vram, step.preview_png))  # fmt: skip
            return not cancel.is_set()

        skipped: list[str] = []  # LoRAs diffusers could not apply: the image records them

        def attempt(plan: Any) -> Any:
            recipe.place(held, plan)  # 2. Place as the plan says
            skipped[:] = recipe.adapt(held, params)  # 3. The image's LoRAs, and no others
            _inject_faults(job, state, torch)
            return recipe.make(held, params, on_step, preview=job.preview, keep_latents=job.score,  # 4-6.
                               warnings=skipped, vae_nan_once=job.index in job.fault.get("vae_nan_at", []))  # fmt: skip

        # 2-6, and on a GPU out-of-memory error once more, one rung thriftier.
        if job.plan is None:
            image, latents = attempt(None)
        else:
            image, latents = run_with_oom_retry(attempt, job.plan, lambda e: events.append(
                f"out of GPU memory with {e.from_strategy}; retried with {e.to_strategy}: {e.error}"))  # fmt: skip
        seconds = time.perf_counter() - started
        # 7. Write atomically; the supervisor records the row when it hears of it.
        recorded = with_warnings(params, skipped)
        recipe.write(image, job.path, recorded, job.thumbs_dir)
        # 8. Score: adherence, and the feature novelty is measured on.
        scores, times, blob, t0 = {}, {}, b"", time.perf_counter()
        if job.score:
            blob = recipe.feature(image)
            for scorer in (job.scorer, *job.also_score):
                scores[scorer], times[scorer] = recipe.score(held, params, image, latents, scorer)
        score_s = time.perf_counter() - t0
        del image, latents
        peak_vram = torch.cuda.max_memory_allocated() if cuda else 0
        return ImageDone(job.job_id, job.run_id, job.index, job.path, seconds, peak_rss, peak_vram, load_s,
                         held.strategy, events, scores.get(job.scorer), blob, score_s, scores, times, skipped)  # fmt: skip
    except Interrupted:
        return Failure(job.job_id, job.index, "cancelled", "cancelled")
    except BadInput as exc:
        return Failure(job.job_id, job.index, "bad-input", str(exc), exc.argument, _plain(exc.value), exc.why)
    except SteadyError as exc:
        kind = "oom" if type(exc).__name__ == "OutOfMemory" else "model"
        return Failure(job.job_id, job.index, kind, str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which fails the job
        return Failure(job.job_id, job.index, "error", f"{type(exc).__name__}: {exc}")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _inject_faults(job: RenderImage, state: _State, torch: Any) -> None:
    """Tests only (RenderImage.fault): hold memory per image, die, stall before the first step (as a
    huge prompt's encode does), or fail with a GPU OOM."""
    if job.index in job.fault.get("die_at", []):
        os._exit(3)
    if job.index in job.fault.get("stall_at", []):
        if job.fault.get("stall_marker"):  # tells the test the stall has begun (the model is loaded)
            open(job.fault["stall_marker"], "w").close()
        time.sleep(float(job.fault.get("stall_s", 60)))
    leak = int(job.fault.get("leak_mb_per_image", 0))
    if leak:
        block = bytearray(leak * 2**20)
        block[:: 4096] = b"\x01" * len(block[:: 4096])  # touch every page so it is resident
        state.leaked.append(block)
    always = job.index in job.fault.get("oom_always_at", [])
    if always or (job.index in job.fault.get("oom_once_at", []) and job.index not in state.oom_injected):
        state.oom_injected.add(job.index)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by a test)")
