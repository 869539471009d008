"""The studio: one generation queue behind the web server, and the events the page listens to.

    studio = Studio(settings())
    studio.start()                         # the generation thread (it owns the supervisor + worker)
    job = studio.submit(GenerationRequest("a red circle", n_images=4))
    outcome = studio.wait(job.id)          # or listen: studio.hub.subscribe()
    studio.stop()

Jobs are the durable rows of steady.jobs.queue: the page and the A1111 API both enqueue, the
single generation thread claims them oldest first and runs them through one Supervisor, so the
worker stays warm between jobs and is recycled by the memory policy like in the CLI. Events
(progress with a latent preview, finished images, job states, memory samples, recycles) go to
every subscriber of the EventHub as plain JSON-able dicts.
"""

from __future__ import annotations

import base64
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steady.catalog.db import Catalog, open_catalog
from steady.catalog.pages import PageCache
from steady.config import Settings
from steady.errors import BadInput, SteadyError
from steady.jobs.protocol import ImageDone, MemorySample, Progress, Recycle
from steady.jobs.queue import JobQueue, JobRecord
from steady.jobs.supervisor import JobOutcome, Supervisor, SupervisorOptions, WorkerDied
from steady.params import GenerationRequest, GenerationResult
from steady.web.events import EventHub


@dataclass
class LiveState:
    """What is being made right now (A1111's /progress reads this)."""

    job_id: int | None = None
    run_id: int | None = None
    index: int = 0
    n_images: int = 0
    step: int = 0
    steps: int = 0
    seconds_per_step: float = 0.0
    started: float = 0.0
    preview_png: bytes = b""
    interrupted: bool = False

    def fraction(self) -> float:
        if self.job_id is None or not self.n_images or not self.steps:
            return 0.0
        return min(1.0, (self.index + self.step / self.steps) / self.n_images)

    def eta_s(self) -> float:
        if self.job_id is None or not self.steps:
            return 0.0
        left_steps = (self.n_images - self.index) * self.steps - self.step
        return max(0.0, left_steps * self.seconds_per_step)


def grid_url(job_id: int) -> str:
    """Where the page fetches a run's X/Y grid (steady.web.api serves it)."""
    return f"/api/jobs/{job_id}/grid"


@dataclass
class StudioOptions:
    supervisor: SupervisorOptions = field(default_factory=lambda: SupervisorOptions(previews=True))
    plan_memory: bool = True
    idle_poll_s: float = 1.0  # how often the idle generation thread looks for jobs another process queued
    # How often the idle server repairs the catalog against the files (stale temp files, PNGs
    # without a row, rows without a file), as `steady serve` does when it starts: a server runs
    # for days, and a killed CLI run or a crash beside it should not wait for its restart.
    reconcile_every_s: float = 600.0
    # The thumbnail cache's bound (least recently used thumbnails go past it; the page remakes
    # one it needs again): about 200,000 grid thumbnails of real renders.
    thumbs_max_bytes: int = 2 << 30


class Studio:
    def __init__(self, cfg: Settings, options: StudioOptions | None = None, catalog: Catalog | None = None):
        self.cfg = cfg
        self.options = options or StudioOptions()
        self.catalog = catalog or open_catalog(cfg.db_path)
        self.queue = JobQueue(self.catalog)
        self.hub = EventHub()
        self.pages = PageCache()  # the gallery's keys per filter (steady.catalog.pages)
        self.live = LiveState()
        self.memory: dict[str, Any] | None = None  # the latest MemorySample as a dict
        self.default_model = ""  # A1111's sd_model_checkpoint: "" = the embedded model
        self.options_store: dict[str, Any] = {}  # other A1111 options a client set (echoed back)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancel: set[int] = set()
        self._futures: dict[int, concurrent.futures.Future[JobOutcome]] = {}
        self._thread: threading.Thread | None = None
        self._import: threading.Thread | None = None
        self.supervisor: Supervisor | None = None
        self._recycles: list[threading.Event] = []  # unload requests the generation thread honours between jobs

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Mark jobs a dead process left running as interrupted (resumed only when asked: steady
        resume), then start the generation thread."""
        self.queue.recover()
        self.supervisor = Supervisor(self.catalog, self.options.supervisor, on_sample=self._on_sample, cfg=self.cfg)
        self._thread = threading.Thread(target=self._loop, name="steady-generation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current image (the job stays queued and resumes at the next start)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.supervisor is not None:
            self.supervisor.close()

    # -- requests ----------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> JobRecord:
        """Check, plan and queue (BadInput before anything is written); the thread picks it up."""
        import dataclasses

        from steady.jobs.runner import prepare, submit

        if not request.model and self.default_model:
            request = dataclasses.replace(request, model=self.default_model)
        gpus = self.supervisor.gpus if self.supervisor is not None else None  # what the worker last saw
        job = submit(prepare(request, self.cfg, self.options.plan_memory, gpus), self.catalog)
        with self._lock:
            self._futures[job.id] = concurrent.futures.Future()
        self.hub.publish({"type": "job", "job_id": job.id, "run_id": job.run_id, "state": "queued",
                          "n_images": job.n_images})  # fmt: skip
        self._wake.set()
        return job

    def submit_upscale(self, request: Any) -> list[JobRecord]:
        """An upscale (steady.request.upscale.UpscaleRequest): checked, planned and queued as one job
        per image (steady.jobs.upscale); the generation thread makes them like any other job."""
        return self.queue_upscale(self.prepare_upscale(request))

    def prepare_upscale(self, request: Any) -> Any:
        """The checked and planned upscale (steady.request.upscale.ResolvedUpscale: its tile plans
        say what each image will take); BadInput before anything is written."""
        from steady.jobs.upscale import prepare_upscale

        gpus = self.supervisor.gpus if self.supervisor is not None else None  # what the worker last saw
        return prepare_upscale(request, self.cfg, self.catalog, gpus)

    def queue_upscale(self, resolved: Any) -> list[JobRecord]:
        from steady.jobs.upscale import submit_upscale

        jobs = submit_upscale(resolved, self.catalog)
        for job in jobs:
            with self._lock:
                self._futures[job.id] = concurrent.futures.Future()
            self.hub.publish({"type": "job", "job_id": job.id, "run_id": job.run_id, "state": "queued",
                              "n_images": job.n_images, "kind": "upscale"})  # fmt: skip
        self._wake.set()
        return jobs

    def recycle_worker(self, timeout: float = 120.0) -> bool:
        """A1111's unload-checkpoint: the worker process stops between jobs (the cleanest free of
        everything it held); the next image starts a fresh one. Waits for it; False: not in time."""
        done = threading.Event()
        if self._thread is None or not self._thread.is_alive():
            if self.supervisor is not None:
                self.supervisor.stop_worker()
            return True
        with self._lock:
            self._recycles.append(done)
        self._wake.set()
        return done.wait(timeout)

    def _honour_recycles(self) -> None:
        with self._lock:
            pending, self._recycles = self._recycles, []
        if pending and self.supervisor is not None:
            self.supervisor.stop_worker()
        for done in pending:
            done.set()

    def future(self, job_id: int) -> concurrent.futures.Future[JobOutcome]:
        with self._lock:
            if job_id not in self._futures:
                raise BadInput("job_id", job_id, "is not a job of this server")
            return self._futures[job_id]

    def wait(self, job_id: int, timeout: float | None = None) -> JobOutcome:
        return self.future(job_id).result(timeout)

    def cancel(self, job_id: int | None = None) -> list[int]:
        """Cancel one job (queued: at once; running: at its next step), or the running one."""
        cancelled: list[int] = []
        target = job_id if job_id is not None else self.live.job_id
        if target is None:
            return cancelled
        job = self.queue.get(target)
        if job.state == "queued":
            self.queue.finish(target, "cancelled", "cancelled before it started")
            self._resolve(JobOutcome(target, job.run_id, "cancelled", [], "cancelled before it started"))
            cancelled.append(target)
        elif job.state == "running":
            with self._lock:
                self._cancel.add(target)
            self.live.interrupted = True
            cancelled.append(target)
        return cancelled

    def start_import(self, folder: str) -> Path:
        """Import a folder in a background thread (one at a time); BadInput when it is not a folder."""
        from steady.catalog.importer import check_folder, import_folder

        path = check_folder(folder)
        with self._lock:
            if self._import is not None and self._import.is_alive():
                raise BadInput("folder", folder, "another import is running; wait for it to finish")

            def progress(done: int, total: int) -> None:
                if done == total or done % 200 == 0:
                    self.hub.publish({"type": "import", "folder": str(path), "done": done, "total": total})

            def thumbs_progress(done: int, total: int) -> None:
                self.hub.publish({"type": "thumbs", "done": done, "total": total})

            def run() -> None:
                try:
                    report = import_folder(self.catalog, path, on_progress=progress)
                    self.hub.publish({"type": "import", "folder": str(path), "finished": True, **report.to_dict()})
                except SteadyError as exc:
                    self.hub.publish({"type": "import", "folder": str(path), "finished": True, "error": str(exc)})
                    return
                self.make_thumbs_ahead(thumbs_progress)

            self._import = threading.Thread(target=run, name="steady-import", daemon=True)
            self._import.start()
        return path

    def make_thumbs_ahead(self, on_progress: Any = None) -> int:
        """The grid thumbnails the catalog lacks (after an import), newest first, then the cache's
        bound (steady.catalog.ahead; one thread, a batch at a time). Returns how many were made."""
        from steady.catalog.ahead import make_thumbs_ahead
        from steady.images.thumbs import evict

        made = make_thumbs_ahead(self.catalog, self.cfg.thumbs_dir, on_progress, self._stopping)
        evict(self.cfg.thumbs_dir, self.options.thumbs_max_bytes)
        return made

    # -- the generation thread ---------------------------------------------------------------
    def _loop(self) -> None:
        last_reconcile = time.monotonic()
        while not self._stopping.is_set():
            self._honour_recycles()
            job = self.queue.claim_next()
            if job is None:
                if time.monotonic() - last_reconcile >= self.options.reconcile_every_s:
                    self._reconcile()
                    last_reconcile = time.monotonic()
                self._wake.wait(self.options.idle_poll_s)
                self._wake.clear()
                continue
            self._run(job)

    def _reconcile(self) -> None:
        """Between jobs, in the generation thread (no image of ours is being written): temp files
        younger than a minute are left to whoever may be writing them."""
        from steady.catalog import reconcile

        report = reconcile(self.catalog, self.cfg.outputs_dir, trash_dir=self.cfg.trash_dir)
        fixed = report.temp_files_removed + report.images_recorded + report.rows_removed
        if fixed:
            self.hub.publish({"type": "reconcile", "temp_files_removed": report.temp_files_removed,
                              "images_recorded": report.images_recorded, "rows_removed": report.rows_removed})  # fmt: skip

    def _run(self, job: JobRecord) -> None:
        assert self.supervisor is not None
        self.live = LiveState(job_id=job.id, run_id=job.run_id, n_images=job.n_images, steps=job.params["steps"],
                              started=time.monotonic())  # fmt: skip
        self.hub.publish({"type": "job", "job_id": job.id, "run_id": job.run_id, "state": "running",
                          "n_images": job.n_images})  # fmt: skip

        def should_stop() -> bool:
            with self._lock:
                return job.id in self._cancel or self._stopping.is_set()

        outcome: JobOutcome
        try:
            outcome = self.supervisor.run(job, lambda event: self._on_event(job, event), should_stop)
        except Exception as exc:  # noqa: BLE001 - the job is failed and reported; the server keeps serving
            outcome = JobOutcome(job.id, job.run_id, "failed", [], f"{type(exc).__name__}: {exc}")
            self.supervisor.stop_worker(timeout=2)
        if self._stopping.is_set() and outcome.state == "cancelled" and job.id not in self._cancel:
            # Stopped by shutdown, not by the user: leave it queued so it resumes next time.
            self.queue.requeue(job.id)
            outcome.state = "queued"
        with self._lock:
            self._cancel.discard(job.id)
        self.live = LiveState()
        self.hub.publish({"type": "job", "job_id": job.id, "run_id": job.run_id, "state": outcome.state,
                          "error": outcome.error, "n_images": job.n_images, "stop_reason": outcome.stop_reason,
                          "saturated": outcome.saturated,
                          "image_ids": [r.image_id for r in outcome.images],
                          "grid_url": grid_url(job.id) if outcome.grid_path else ""})  # fmt: skip
        self._resolve(outcome)

    def _resolve(self, outcome: JobOutcome) -> None:
        with self._lock:
            future = self._futures.setdefault(outcome.job_id, concurrent.futures.Future())
        if not future.done():
            future.set_result(outcome)

    def _on_event(self, job: JobRecord, event: object) -> None:
        live = self.live
        if isinstance(event, Progress):
            live.index, live.step, live.steps = event.image_index, event.step, event.steps
            if event.seconds_per_step:  # 0.0 on an image's first step: keep the last known pace
                live.seconds_per_step = event.seconds_per_step
            message: dict[str, Any] = {"type": "progress", "job_id": job.id, "run_id": job.run_id,
                                       "index": event.image_index, "n_images": event.n_images, "step": event.step,
                                       "steps": event.steps,
                                       "eta_s": round(live.eta_s(), 1) if live.seconds_per_step else None,
                                       "fraction": round(live.fraction(), 4)}  # fmt: skip
            if event.preview_png:
                live.preview_png = event.preview_png
                message["preview"] = "data:image/png;base64," + base64.b64encode(event.preview_png).decode()
            self.hub.publish(message)
        elif isinstance(event, GenerationResult):
            live.index, live.step = event.index + 1, 0
            self.hub.publish({"type": "image", "job_id": job.id, "run_id": job.run_id, "image_id": event.image_id,
                              "index": event.index, "seed": event.params.seed, "seconds": round(event.seconds, 2),
                              "adherence": event.adherence, "novelty": event.novelty})  # fmt: skip
        elif isinstance(event, Recycle):
            self.hub.publish({"type": "recycle", "reason": event.reason, "images": event.images})
        elif isinstance(event, WorkerDied):
            self.hub.publish({"type": "worker-died", "exitcode": event.exitcode, "index": event.index})
        elif isinstance(event, ImageDone) and event.events:
            self.hub.publish({"type": "notice", "text": "; ".join(event.events)})

    def _on_sample(self, sample: MemorySample) -> None:
        self.memory = sample.to_dict()
        self.hub.publish({**self.memory, "type": "memory"})
