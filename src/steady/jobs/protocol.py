"""Typed messages between the supervisor (CLI or server process) and the worker process.

Dataclasses only: they pickle across the spawn boundary and serialise to JSON for HTTP
(``to_dict``); never positional tuples. Direction:

    supervisor -> worker   RenderImage, Cancel, Shutdown
    worker -> supervisor   Ready, Progress, ImageDone, Failure, Heartbeat
    supervisor's own       MemorySample (what it measured of the worker and the machine), Recycle

One RenderImage asks for one image, so the supervisor can replace the worker between any two
images of a run without the worker having to know why. It carries the image's ImageParams and the
memory Plan as the typed objects the supervisor records, not as dicts to rebuild.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from steady.params import ImageParams
from steady.request.machine import Gpu
from steady.request.planner import Plan

HEARTBEAT_S = 1.0


@dataclass
class WorkerOptions:
    """How the supervisor starts a worker process."""

    threads: int | None = None  # torch threads on the CPU (the planner's choice); None: torch's
    heartbeat_s: float = HEARTBEAT_S
    hygiene: bool = True  # gc + malloc_trim + empty_cache after each image


class _Message:
    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **dataclasses.asdict(self)}  # type: ignore[call-overload]


@dataclass
class RenderImage(_Message):
    """Render image ``index`` of run ``run_id`` and write it to ``path`` (atomically)."""

    job_id: int
    run_id: int
    index: int
    path: str
    params: ImageParams  # prompt, seed, sampler, model...: what the image is made with and recorded as
    model_path: str
    n_images: int = 1  # in the run, for progress reports
    allow_pickle: bool = False
    plan: Plan | None = None  # the memory plan, or None: the worker's defaults
    preview: bool = False  # send a latent preview with some Progress messages (the web page wants them)
    score: bool = True  # score prompt adherence and send the image's novelty feature with ImageDone
    scorer: str = "model"  # "model" (the generating model) or a local CLIP model folder (config `scorer`)
    also_score: tuple[str, ...] = ()  # more scorers, reported in ImageDone.scores (eval-iterate compares them)
    fault: dict[str, Any] = field(default_factory=dict)  # tests only: inject a leak or a crash
    thumbs_dir: str = ""  # where to leave the image's grid thumbnail (steady.images.thumbs); "": none


@dataclass
class Cancel(_Message):
    """Stop the image in progress at the next step (its file is not written)."""

    job_id: int


@dataclass
class Shutdown(_Message):
    """Finish nothing more and exit."""


@dataclass
class Ready(_Message):
    pid: int
    torch_threads: int
    device_count: int = 0
    gpus: list[Gpu] = field(default_factory=list)  # what torch sees, with free VRAM (no NVML needed)


@dataclass
class Progress(_Message):
    run_id: int | None
    image_index: int  # 0-based index of the image in its run
    n_images: int
    step: int  # steps finished for this image
    steps: int
    seconds_per_step: float
    rss_bytes: int = 0
    vram_bytes: int = 0
    preview_png: bytes = b""  # on some steps: a small PNG of the current latent (linear approximation)


@dataclass
class ImageDone(_Message):
    job_id: int
    run_id: int
    index: int
    path: str
    seconds: float
    peak_rss_bytes: int
    peak_vram_bytes: int
    load_seconds: float = 0.0  # > 0 when this image had to load the model first
    strategy: str = ""  # the memory strategy it ran with (may be thriftier after an OOM retry)
    events: list[str] = field(default_factory=list)  # e.g. an out-of-memory retry, reported
    adherence: float | None = None  # steady.worker.adherence score (None: not scored / not supported)
    feature: bytes = b""  # steady.scoring.novelty feature of the image (float16), for novelty
    score_seconds: float = 0.0  # what scoring cost, next to ``seconds`` for the image itself
    scores: dict[str, float | None] = field(default_factory=dict)  # every scorer's score, by scorer
    score_times: dict[str, float] = field(default_factory=dict)  # and what each cost
    warnings: list[str] = field(default_factory=list)  # e.g. a LoRA the worker could not apply; the PNG records them


def with_warnings(params: ImageParams, warnings: list[str]) -> ImageParams:
    """``params`` with ``warnings`` added to what ``extra["warnings"]`` already says (the image's
    record: its PNG and its catalog row). An embedding the worker could not load ("embedding NAME skipped: ...") is taken out of
    ``extra["embeddings"]``, so that the PNG's TI hashes name only what made the image."""
    if not warnings:
        return params
    known = list(params.extra.get("warnings", []))
    extra = {**params.extra, "warnings": known + [w for w in warnings if w not in known]}
    if extra.get("embeddings"):
        kept = [e for e in extra["embeddings"] if not any(w.startswith(f"embedding {e['name']} skipped:") for w in warnings)]
        extra.pop("embeddings")
        extra.update({"embeddings": kept} if kept else {})
    return dataclasses.replace(params, extra=extra)


@dataclass
class Failure(_Message):
    """An image could not be made. ``kind``: 'bad-input', 'model', 'oom', 'cancelled', 'error'."""

    job_id: int
    index: int
    kind: str
    message: str
    argument: str = ""  # for 'bad-input': the argument the message names, its value and why
    value: Any = None
    why: str = ""


@dataclass
class Heartbeat(_Message):
    """Sent by the worker about once a second, busy or idle: its own view of its memory."""

    pid: int
    rss_bytes: int
    torch_allocated: int = 0  # torch.cuda.memory_allocated (0 without a GPU)
    torch_reserved: int = 0
    busy: bool = False
    gpus: list[Gpu] = field(default_factory=list)  # free VRAM now (empty without a GPU)


@dataclass
class MemorySample(_Message):
    """What the supervisor measured at time ``t`` (seconds since it started)."""

    t: float
    worker_pid: int
    rss_bytes: int
    uss_bytes: int
    vram_bytes: int  # NVML per-process use, else the worker's torch_reserved, else 0
    available_bytes: int  # system RAM available
    swap_used_bytes: int
    swap_in_per_s: float  # bytes swapped in per second since the previous sample
    images: int  # images this worker has finished


@dataclass
class Recycle(_Message):
    """The supervisor replaced the worker between two images."""

    t: float
    old_pid: int
    reason: str
    images: int  # images the old worker made
    rss_bytes: int
    baseline_rss_bytes: int
