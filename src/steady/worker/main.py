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

import ctypes
import gc
import os
import queue
import signal
import sys
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
)

HEARTBEAT_S = 1.0


@dataclass
class WorkerOptions:
    threads: int | None = None  # torch threads on the CPU (the planner's choice); None: torch's
    heartbeat_s: float = HEARTBEAT_S
    hygiene: bool = True  # gc + malloc_trim + empty_cache after each image


@dataclass
class _State:
    """Everything the worker holds between images (one instance, owned by worker_main)."""

    pipe: Any = None
    model_key: tuple[Any, ...] | None = None
    strategy: str = ""  # the planner strategy applied to ``pipe`` ("" before any plan)
    preview: Any = None  # steady.worker.preview.PreviewMaker for ``pipe`` (made when first asked for)
    scorer: Any = None  # steady.worker.adherence.AdherenceScorer for ``pipe``
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


def malloc_trim() -> bool:
    """Give freed heap pages back to the OS on glibc (glibc keeps them otherwise)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def worker_main(conn: Any, options: WorkerOptions) -> None:
    # Ctrl-C reaches the whole process group: the supervisor decides what to do with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    import torch

    from steady.worker.pipeline import quiet_libraries

    quiet_libraries()
    if options.threads:
        torch.set_num_threads(options.threads)
    chan, inbox, cancel = _Channel(conn), queue.Queue(), threading.Event()
    state = _State()
    threading.Thread(target=_read, args=(conn, inbox, cancel), name="steady-worker-reader", daemon=True).start()
    threading.Thread(target=_heartbeat, args=(chan, state, options.heartbeat_s), name="steady-worker-heartbeat",
                     daemon=True).start()  # fmt: skip
    chan.send(Ready(pid=os.getpid(), torch_threads=torch.get_num_threads(),
                    device_count=torch.cuda.device_count() if torch.cuda.is_available() else 0))  # fmt: skip
    while True:
        message = inbox.get()
        if isinstance(message, Shutdown) or message is None:
            return
        cancel.clear()
        state.busy = True
        try:
            chan.send(_render_one(message, state, chan, cancel))
        finally:
            state.busy = False
        if options.hygiene:
            gc.collect()
            malloc_trim()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _read(conn: Any, inbox: queue.Queue, cancel: threading.Event) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            # The supervisor is gone: nobody will record what we make, so stop at once.
            os._exit(0)
        if isinstance(message, Cancel):
            cancel.set()
        else:
            inbox.put(message)


def _heartbeat(chan: _Channel, state: _State, every: float) -> None:
    import psutil
    import torch

    me = psutil.Process()
    while True:
        time.sleep(every)
        allocated = reserved = 0
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
        try:
            chan.send(Heartbeat(pid=os.getpid(), rss_bytes=me.memory_info().rss, torch_allocated=allocated,
                                torch_reserved=reserved, busy=state.busy))  # fmt: skip
        except (OSError, ValueError):
            return


def _render_one(job: RenderImage, state: _State, chan: _Channel, cancel: threading.Event) -> object:
    """Steps 3-7 for one image: load (or reuse), encode + denoise + decode, write, report."""
    import psutil
    import torch

    from steady.errors import BadInput, SteadyError
    from steady.images.pngmeta import write_png
    from steady.params import ImageParams
    from steady.worker.pipeline import Interrupted, render
    from steady.worker.planner import Plan
    from steady.worker.strategy import apply_plan, run_with_oom_retry

    params = ImageParams.from_dict(job.params)
    me = psutil.Process()
    try:
        # 3. Load, unless this pipeline is already resident.
        load_s = _ensure_pipeline(job, params, state)
        cuda = params.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        peak_rss, started, events, final = me.memory_info().rss, time.perf_counter(), [], []

        def on_step(step: Any) -> bool:
            nonlocal peak_rss
            rss = me.memory_info().rss
            peak_rss = max(peak_rss, rss)
            vram = torch.cuda.memory_allocated() if cuda else 0
            chan.send(Progress(job.run_id, job.index, job.n_images, step.step, step.steps, step.seconds_per_step,
                               rss, vram, step.preview_png))  # fmt: skip
            return not cancel.is_set()

        def attempt(plan: Plan | None) -> Any:
            if plan is not None and plan.strategy != state.strategy:
                apply_plan(state.pipe, plan)
                state.strategy = plan.strategy
            _inject_faults(job, state, torch)
            final.clear()
            return render(state.pipe, params, params.device, on_step=on_step, preview=_previewer(job, params, state),
                          on_final_latents=final.append if job.score else None)  # fmt: skip

        # 4-5. Encode, denoise, decode; on a GPU out-of-memory error once more, one rung thriftier.
        plan = Plan.from_dict(job.plan) if job.plan else None
        if plan is None:
            image = attempt(None)
        else:
            image = run_with_oom_retry(attempt, plan, lambda e: events.append(
                f"out of GPU memory with {e.from_strategy}; retried with {e.to_strategy}: {e.error}"))  # fmt: skip
        seconds = time.perf_counter() - started
        # 6. Write atomically; the supervisor records the row (7) when it hears of it.
        write_png(image, job.path, params)
        # 7. Score: adherence from the model, the feature novelty is measured on.
        adherence, feature, score_s = _score(job, params, state, image, final)
        del image
        final.clear()
        peak_vram = torch.cuda.max_memory_allocated() if cuda else 0
        return ImageDone(job.job_id, job.run_id, job.index, job.path, seconds, peak_rss, peak_vram, load_s,
                         state.strategy, events, adherence, feature, score_s)  # fmt: skip
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


def _ensure_pipeline(job: RenderImage, params: Any, state: _State) -> float:
    from steady.models.detect import inspect_model
    from steady.worker.loader import load_pipeline
    from steady.worker.pipeline import DTYPES, confirm_device

    key = (job.model_path, params.device, params.dtype, job.allow_pickle)
    if state.pipe is not None and state.model_key == key:
        return 0.0
    state.pipe, state.model_key, state.strategy = None, None, ""  # one pipeline at most: drop it first
    state.preview = state.scorer = None
    gc.collect()
    t0 = time.perf_counter()
    confirm_device(params.device)
    info = inspect_model(job.model_path)
    device = "cpu" if job.plan else params.device  # a plan places the pipeline itself
    state.pipe = load_pipeline(info, device=device, dtype=DTYPES[params.dtype], allow_pickle=job.allow_pickle)
    state.model_key = key
    return time.perf_counter() - t0


def _score(job: RenderImage, params: Any, state: _State, image: Any, final: list[Any]) -> tuple[Any, bytes, float]:
    if not job.score:
        return None, b"", 0.0
    from steady.prompt_schedule import prompt_schedule
    from steady.scoring.novelty import image_feature, to_blob
    from steady.worker.adherence import make_scorer

    t0 = time.perf_counter()
    if state.scorer is None:
        state.scorer = make_scorer(state.pipe, job.scorer)
    # A prompt that changes during sampling (A1111 prompt editing) is scored by its last text.
    prompt = prompt_schedule(params.prompt, params.steps)[-1].text
    adherence = state.scorer.score(final[-1], image, prompt) if final else None
    return adherence, to_blob(image_feature(image)), time.perf_counter() - t0


def _previewer(job: RenderImage, params: Any, state: _State) -> Any:
    """The latent preview maker for the loaded pipeline, when the job asks for previews."""
    if not job.preview:
        return None
    if state.preview is None:
        from steady.worker.preview import PreviewMaker

        state.preview = PreviewMaker.for_pipeline(state.pipe, params.model_arch)
    return state.preview


def _inject_faults(job: RenderImage, state: _State, torch: Any) -> None:
    """Tests only (RenderImage.fault): hold memory per image, die, or fail with a GPU OOM."""
    if job.index in job.fault.get("die_at", []):
        os._exit(3)
    leak = int(job.fault.get("leak_mb_per_image", 0))
    if leak:
        block = bytearray(leak * 2**20)
        block[:: 4096] = b"\x01" * len(block[:: 4096])  # touch every page so it is resident
        state.leaked.append(block)
    always = job.index in job.fault.get("oom_always_at", [])
    if always or (job.index in job.fault.get("oom_once_at", []) and job.index not in state.oom_injected):
        state.oom_injected.add(job.index)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by a test)")
