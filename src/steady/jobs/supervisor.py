"""The supervisor: owns the worker process, feeds it one image at a time, records what it makes,
watches its memory and replaces it between images when the recycle policy says so.

    with Supervisor(catalog) as sup:
        outcome = sup.run(queue.claim(job.id), on_event=print)

What it guarantees:
- every image a job asks for ends up written and recorded exactly once: a worker that dies (a
  crash, the OOM killer, SIGKILL) is replaced and the image it was making is made again with the
  same seed, under the same name (identical pixels); a half-written temp file is removed;
- an image whose worker died MAX_TRIES_PER_IMAGE times in a row (counted on the job row, so
  across restarts too: steady.jobs.queue) fails its job instead of being tried again;
- a cancel stops the image at its next step; one that has no step to stop at (a model load, a
  huge prompt's encode) stops when the worker is replaced, ``cancel_grace_s`` later; a cancelled
  image whose worker died is not made again;
- the worker is replaced only between images, never in the middle of one;
- each recycle and each worker death is reported (``Recycle`` / ``WorkerDied`` events) with its
  reason, and counted on the job row.
Only this module and steady.worker.main cross the process boundary; only the worker imports torch
(this module names the worker's entry point, which runs in the child).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steady.catalog.db import Catalog
from steady.catalog.scores import finish_run_scores, record_scores, run_novelties
from steady.config import Settings, settings
from steady.errors import BadInput, SteadyError
from steady.images.grid import write_grid
from steady.jobs.memory import MemoryWatch, RecyclePolicy, WorkerStats
from steady.jobs.protocol import (
    Cancel,
    Failure,
    Heartbeat,
    ImageDone,
    MemorySample,
    Progress,
    Ready,
    Recycle,
    RenderImage,
    Shutdown,
    WorkerOptions,
    with_warnings,
)
from steady.jobs.queue import MAX_TRIES_PER_IMAGE, JobQueue, JobRecord
from steady.params import GenerationResult, ImageParams
from steady.request.machine import Gpu
from steady.request.planner import Plan
from steady.scoring.novelty import SaturationRule, from_blob


class WorkerFailed(SteadyError):
    """The worker died on the same image too many times, or would not start."""


@dataclass
class WorkerDied:
    """Reported when the worker process ended without being asked to."""

    t: float
    pid: int
    exitcode: int | None
    job_id: int
    index: int  # the image it was making; it is made again
    attempt: int


@dataclass
class SupervisorOptions:
    policy: RecyclePolicy = field(default_factory=RecyclePolicy)
    sample_interval: float = 0.5
    start_timeout_s: float = 300.0
    max_deaths_per_image: int = MAX_TRIES_PER_IMAGE - 1  # the image is tried 1 + this many times
    cancel_grace_s: float = 10.0  # a cancelled image not stopped this long after (or 2 steps) ends its worker
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    fault: dict[str, Any] = field(default_factory=dict)  # tests only: passed to every RenderImage
    threads: int | None = None  # overrides the plan's CPU thread count (reproducible test runs)
    previews: bool = False  # ask the worker for latent previews in its Progress messages
    scorer: str | None = None  # adherence scorer ("model" or a CLIP folder); None: the settings' `scorer`
    also_score: tuple[str, ...] = ()  # more scorers whose scores ImageDone reports (not recorded)


@dataclass
class JobOutcome:
    job_id: int
    run_id: int
    state: str  # done / failed / cancelled
    images: list[GenerationResult]
    error: str = ""
    failure: Failure | None = None  # what the worker reported, when it reported a failure
    recycles: list[Recycle] = field(default_factory=list)
    deaths: list[WorkerDied] = field(default_factory=list)
    stop_reason: str = ""  # how a --until-saturated run ended: saturated (and why), or at its cap
    saturated: bool = False  # True: it stopped before its cap because variety saturated
    grid_path: str = ""  # the X/Y grid PNG of a run with axes


@dataclass
class _Worker:
    process: Any
    conn: Any
    pid: int
    started: float
    model_path: str = ""
    images: int = 0
    baseline_rss: int | None = None


class Supervisor:
    def __init__(self, catalog: Catalog, options: SupervisorOptions | None = None,
                 on_sample: Callable[[MemorySample], None] | None = None, cfg: Settings | None = None):  # fmt: skip
        self.catalog = catalog
        self.queue = JobQueue(catalog)
        self.options = options or SupervisorOptions()
        self.watch = MemoryWatch(self.options.sample_interval, on_sample=on_sample)
        self.worker: _Worker | None = None
        self.t0 = time.monotonic()
        self.recycles: list[Recycle] = []
        self.deaths: list[WorkerDied] = []
        self.start_seconds: list[float] = []  # spawn to Ready (interpreter + torch imports), per worker
        self.load_seconds: list[float] = []  # model loads reported by the workers
        self.gpus: list[Gpu] | None = None  # as the worker last reported them (None: no worker yet)
        # The worker leaves each image's grid thumbnail there: the catalog's home's cache.
        self.thumbs_dir = cfg.thumbs_dir if cfg is not None else Settings(home=catalog.path.parent).thumbs_dir
        if self.options.scorer is None:
            self.scorer = (cfg or settings()).scorer
        else:
            self.scorer = self.options.scorer

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker process ------------------------------------------------------------------
    def start_worker(self) -> _Worker:
        # The worker's entry point runs only in the child (spawn): this process never imports torch.
        from steady.worker.main import worker_main

        t0 = time.monotonic()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker_main, args=(child, self.options.worker), name="steady-worker",
                              daemon=True)  # fmt: skip
        process.start()
        child.close()
        deadline = time.monotonic() + self.options.start_timeout_s
        while time.monotonic() < deadline:
            if parent.poll(0.2):
                try:
                    message = parent.recv()
                except EOFError:
                    break
                if isinstance(message, Ready):
                    self.gpus = message.gpus
                    self.start_seconds.append(round(time.monotonic() - t0, 3))
                    self.worker = _Worker(process, parent, message.pid, time.monotonic())
                    self.watch.watch(message.pid)
                    return self.worker
            elif not process.is_alive():
                break
        process.kill()
        process.join(5)
        raise WorkerFailed(f"the worker process did not start (exit code {process.exitcode})")

    def stop_worker(self, timeout: float = 10.0) -> None:
        w, self.worker = self.worker, None
        if w is None:
            return
        try:
            w.conn.send(Shutdown())
        except (OSError, ValueError):
            pass  # already gone
        w.process.join(timeout)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(5)
        w.conn.close()

    def close(self) -> None:
        self.stop_worker()
        self.watch.stop()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def recycle_reason(self, model_path: str) -> str | None:
        from steady.sysmem import ram_view

        w = self.worker
        if w is None:
            return None
        if w.model_path and w.model_path != model_path:
            return f"model switch ({Path(w.model_path).name} -> {Path(model_path).name})"
        rss = worker_rss(w.pid)
        if rss is None:
            return None
        latest, ram = self.watch.latest(), ram_view()
        stats = WorkerStats(
            images=w.images, age_s=time.monotonic() - w.started, rss=rss, baseline_rss=w.baseline_rss,
            available=ram.available,
            swap_in_per_s=latest.swap_in_per_s if latest and latest.worker_pid == w.pid else 0.0,
        )  # fmt: skip
        return self.options.policy.decide(stats, ram.total)

    def _recycle(self, reason: str, job: JobRecord, on_event: Callable[[object], None] | None) -> None:
        w = self.worker
        assert w is not None
        event = Recycle(self.elapsed(), w.pid, reason, w.images, worker_rss(w.pid) or 0, w.baseline_rss or 0)
        self.stop_worker()
        self.recycles.append(event)
        self.queue.count(job.id, "recycles")
        if on_event is not None:
            on_event(event)

    # -- jobs ----------------------------------------------------------------------------------
    def run(self, job: JobRecord, on_event: Callable[[object], None] | None = None,
            should_stop: Callable[[], bool] | None = None, stopped: str = "cancelled") -> JobOutcome:  # fmt: skip
        """Make every image of ``job`` that is not recorded yet (it must be 'running': claimed).

        ``should_stop`` true: the image being made stops at its next step and is discarded (or,
        made already, recorded) and the job ends ``stopped``: 'cancelled' (its user cancelled it)
        or 'interrupted' (its program is stopping: Ctrl-C; `steady resume` goes on). A
        KeyboardInterrupt that reaches here (a second Ctrl-C) ends the worker at once: the job is
        'interrupted' and what the worker left of its image, written or not, is removed, so the
        files and the rows agree when it propagates."""
        outcome = JobOutcome(job.id, job.run_id, "running", [])
        recycles0, deaths0 = len(self.recycles), len(self.deaths)
        strikes = job.strikes  # earlier tries of its next image that ended with a dead worker or program
        try:
            for index in self.queue.missing_indices(job):
                if should_stop is not None and should_stop():
                    outcome.state = stopped
                    break
                result = self._make_image(job, index, on_event, should_stop, strikes)
                strikes = 0
                if isinstance(result, Failure):
                    outcome.state = stopped if result.kind == "cancelled" else "failed"
                    outcome.error, outcome.failure = result.message, result
                    break
                outcome.images.append(result)
                if on_event is not None:
                    on_event(result)
                if job.stop_rule:
                    outcome.stop_reason = SaturationRule(**job.stop_rule).check(run_novelties(self.catalog, job.run_id)) or ""
                    if outcome.stop_reason:
                        outcome.saturated = True
                        break
            if outcome.state == "running":
                outcome.state = "done"
                if job.stop_rule and not outcome.saturated:
                    outcome.stop_reason = (f"reached its cap of {job.n_images} images before variety saturated: its "
                                           "latest images still brought new patterns; raise -n (or --max-images) "
                                           "to see more, or narrow the prompt")  # fmt: skip
                threshold = SaturationRule(**(job.stop_rule or {})).threshold
                finish_run_scores(self.catalog, job.run_id, threshold, outcome.stop_reason)
                outcome.grid_path = str(write_grid(job, self.catalog) or "")
        except KeyboardInterrupt:
            outcome.state = "interrupted"
            self.stop_worker(timeout=0)  # now: it would finish its image, which nobody would record
            remove_leftovers(job, self.queue.missing_indices(job), finished=True)
            raise
        except Exception as exc:
            outcome.error = outcome.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if outcome.state == "running":  # an error ended it: nothing may call it done
                outcome.state = "failed"
            self.queue.finish(job.id, outcome.state, outcome.error)
            outcome.recycles = self.recycles[recycles0:]
            outcome.deaths = self.deaths[deaths0:]
        return outcome

    def _make_image(self, job: JobRecord, index: int, on_event: Callable[[object], None] | None,
                    should_stop: Callable[[], bool] | None, strikes: int = 0) -> GenerationResult | Failure:  # fmt: skip
        deaths = strikes
        while True:
            # An upscale (steady.jobs.upscale) is no model switch: its small model sits beside the held
            # pipeline in the same worker, which drops it when a generation comes.
            upscale = "postprocess" in job.params.get("extra", {})
            reason = self.recycle_reason(self.worker.model_path if upscale and self.worker else job.model_path)
            if reason is not None:
                self._recycle(reason, job, on_event)
            if self.worker is None:
                self.start_worker()
                if should_stop is not None and should_stop():  # cancelled while the worker started
                    return Failure(job.id, index, "cancelled", "cancelled")
            w = self.worker
            assert w is not None
            if not upscale:
                w.model_path = job.model_path
            plan = self._plan_for(job)
            params = job.image_params(index)
            if plan is not None and plan.threads:  # the pixels depend on it: recorded with the image
                params = dataclasses.replace(params, extra={**params.extra, "threads": plan.threads})
            message = self._render(w, job, index, params, plan, on_event, should_stop)
            if message is None:  # the worker died in the middle of this image
                deaths = self.queue.strike(job.id)
                event = WorkerDied(self.elapsed(), w.pid, w.process.exitcode, job.id, index, deaths)
                self.deaths.append(event)
                _remove_temp_files(job.image_path(index))
                if on_event is not None:
                    on_event(event)
                if deaths > self.options.max_deaths_per_image:
                    before = f" ({strikes} of them before a restart)" if strikes else ""
                    raise WorkerFailed(f"the worker died {deaths} times on image {index} of run {job.run_id}{before} "
                                       f"(last exit code {w.process.exitcode}); it is not tried again")  # fmt: skip
                if should_stop is not None and should_stop():  # cancelled: not made again
                    return Failure(job.id, index, "cancelled", "cancelled (its worker had died)")
                continue
            if deaths:
                self.queue.clear_strikes(job.id)  # the worker answered for this image
            if isinstance(message, Failure):
                return message
            if message.load_seconds:
                self.load_seconds.append(round(message.load_seconds, 3))
            if on_event is not None:
                on_event(message)  # the ImageDone itself: strategy, load time, OOM retries
            return self._record(w, job, params, message)

    def _plan_for(self, job: JobRecord) -> Plan | None:
        """The job's memory plan, with the thread count this supervisor was told to use, if any."""
        if job.plan is not None and self.options.threads:
            return dataclasses.replace(job.plan, threads=self.options.threads)
        return job.plan

    def _render(self, w: _Worker, job: JobRecord, index: int, params: ImageParams, plan: Plan | None,
                on_event: Callable[[object], None] | None,
                should_stop: Callable[[], bool] | None) -> ImageDone | Failure | None:  # fmt: skip
        request = RenderImage(
            job_id=job.id, run_id=job.run_id, index=index, path=str(job.image_path(index)),
            params=params, model_path=job.model_path, n_images=job.n_images,
            allow_pickle=bool(params.extra.get("allow_pickle", False)), plan=plan,
            preview=self.options.previews, scorer=self.scorer, also_score=self.options.also_score,
            fault=self.options.fault, thumbs_dir=str(self.thumbs_dir),
        )  # fmt: skip
        try:
            w.conn.send(request)
        except (OSError, ValueError):
            return self._dead(w)
        cancel_sent = 0.0  # when a Cancel went to the worker (0: none)
        longest_step = 0.0
        while True:
            if should_stop is not None and not cancel_sent and should_stop():
                try:
                    w.conn.send(Cancel(job.id))
                except (OSError, ValueError):
                    pass
                cancel_sent = time.monotonic()
            if cancel_sent and time.monotonic() - cancel_sent > max(self.options.cancel_grace_s, 2 * longest_step):
                # No step came to stop at (a model load, a huge prompt's encode): end the worker.
                waited = round(time.monotonic() - cancel_sent, 1)
                w.process.kill()
                self._dead(w)
                return Failure(job.id, index, "cancelled", f"cancelled; the worker had not stopped {waited} s later "
                               "(no step to stop at), so it was replaced")  # fmt: skip
            try:
                ready = w.conn.poll(0.1)
                message = w.conn.recv() if ready else None
            except (EOFError, OSError):
                return self._dead(w)
            if message is None:
                if not w.process.is_alive():
                    return self._dead(w)
                continue
            if isinstance(message, Heartbeat):
                self.watch.torch_reserved = message.torch_reserved
                if message.gpus:
                    self.gpus = message.gpus
            elif isinstance(message, Progress):
                longest_step = max(longest_step, message.seconds_per_step)
                if on_event is not None:
                    on_event(message)
            elif isinstance(message, (ImageDone, Failure)):
                return message

    def _dead(self, w: _Worker) -> None:
        w.process.join(5)
        if self.worker is w:
            self.worker = None
        w.conn.close()

    def _record(self, w: _Worker, job: JobRecord, params: ImageParams, done: ImageDone) -> GenerationResult:
        params = with_warnings(params, done.warnings)  # as the worker wrote them into the PNG
        image_id = self.catalog.add_image(job.run_id, done.path, done.index, params, done.seconds,
                                          peak_rss_bytes=done.peak_rss_bytes, peak_vram_bytes=done.peak_vram_bytes)  # fmt: skip
        from steady.catalog.ahead import record_colour
        from steady.images.thumbs import adopt_pending

        colour = adopt_pending(self.thumbs_dir, done.path, image_id)  # the worker's thumbnail, under the id
        if colour is not None:
            record_colour(self.catalog, image_id, colour)
        value = None
        if done.feature or done.adherence is not None:
            value = record_scores(self.catalog, image_id, done.adherence, from_blob(done.feature) if done.feature else None)
        w.images += 1
        self.watch.images = w.images
        if w.baseline_rss is None and w.images >= self.options.policy.warmup_images:
            w.baseline_rss = worker_rss(w.pid)
        return GenerationResult(path=done.path, params=params, index=done.index, run_id=job.run_id,
                                image_id=image_id, seconds=done.seconds, peak_rss_bytes=done.peak_rss_bytes,
                                adherence=done.adherence, novelty=value)  # fmt: skip


def worker_rss(pid: int) -> int | None:
    """Resident bytes of process ``pid`` now, or None when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def remove_leftovers(job: JobRecord, indices: list[int], finished: bool) -> None:
    """What a stopped worker left of these images (they have no row): their temp files and, with
    ``finished``, a PNG written before its row was. Each is made again, with the same seed under
    the same name, when the run resumes. Only for images no live worker is making."""
    for index in indices:
        target = job.image_path(index)
        if finished:
            target.unlink(missing_ok=True)
        _remove_temp_files(target)


def _remove_temp_files(target: Path) -> None:
    """A worker killed while writing leaves ``.NAME.xxxx.tmp`` beside the target: remove it."""
    from steady.images.pngmeta import is_temp_name

    for p in target.parent.glob(f".{target.name}.*.tmp"):
        if is_temp_name(p.name):
            p.unlink(missing_ok=True)


class JobFailed(SteadyError):
    """The worker could not make an image (the message says why)."""


def raise_failure(outcome: JobOutcome) -> None:
    """Turn a failed outcome into the error the CLI prints (bad input keeps argument and value)."""
    if outcome.state != "failed":
        return
    f = outcome.failure
    if f is not None and f.kind == "bad-input":
        raise BadInput(f.argument, f.value, f.why)
    raise JobFailed(outcome.error)
