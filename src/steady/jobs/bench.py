"""`steady bench`: what `steady generate`'s path costs over a plain diffusers loop, measured.

Both sides make a warm-up image and then N timed images of the same model, prompt, sampler,
steps, size, CFG, threads and seeds. The steady side is the real path (steady.jobs.runner): the
request checked, planned and queued, a supervised worker process making each image (render,
atomic PNG with metadata, adherence score), the catalog row recorded; an image's time is the gap
between two recorded images. The plain side (steady.worker.plain) is a child process calling
the pipeline and saving the PNG with PIL, as a user's own script would.

Peak RSS is the worker's own (VmHWM, Linux) against the plain process's; the CLI process that
supervises stays free of torch and is not counted on either side.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from steady.catalog.db import open_catalog
from steady.config import Settings
from steady.jobs.protocol import ImageDone
from steady.jobs.runner import prepare, run
from steady.jobs.supervisor import Supervisor, SupervisorOptions, raise_failure
from steady.params import GenerationRequest, GenerationResult
from steady.request.check import Resolved


@dataclass
class BenchSettings:
    model: str = ""
    prompt: str = "a small red circle at the top left on a blue background"
    steps: int = 20
    width: int | None = None
    height: int | None = None
    images: int = 4
    sampler: str = "Euler a"
    seed: int = 1234


@dataclass
class SideResult:
    side: str
    seconds_per_image: list[float]
    median_seconds: float
    peak_rss_bytes: int
    load_seconds: float
    score_seconds: float = 0.0  # median adherence-scoring time per image (steady side)


@dataclass
class BenchReport:
    settings: BenchSettings
    plain: SideResult
    steady: SideResult
    time_overhead: float  # steady median / plain median - 1 (scoring included)
    rss_overhead: float
    # Best image against best image: the figure least disturbed by other load on the machine,
    # which on 2 cores moves single images by ±10 % (more than the path could add).
    time_overhead_min: float = 0.0
    time_overhead_unscored: float = 0.0  # the same medians with steady's scoring time taken out

    def to_dict(self) -> dict:
        return asdict(self)


def run_bench(s: BenchSettings, cfg: Settings) -> BenchReport:
    out = tempfile.mkdtemp(prefix="steady-bench-")
    request = GenerationRequest(prompt=s.prompt, steps=s.steps, width=s.width, height=s.height, sampler=s.sampler,
                                seed=s.seed, n_images=s.images + 1, model=s.model, out_dir=out)  # fmt: skip
    resolved = prepare(request, cfg)
    ours = _steady_side(resolved, cfg)
    threads = resolved.memory.threads if resolved.memory is not None else None
    r = resolved.request
    plain_settings = {"model_path": str(resolved.model.path), "prompt": r.prompt, "steps": r.steps, "width": r.width,
                      "height": r.height, "images": s.images, "sampler": r.sampler, "seed": r.seed,
                      "cfg_scale": r.cfg_scale, "device": resolved.device, "dtype": resolved.dtype, "threads": threads,
                      "out_dir": out}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "steady.worker.plain", json.dumps(plain_settings)], check=True,
                          capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))  # fmt: skip
    p = json.loads(done.stdout.strip().splitlines()[-1])
    plain = SideResult("plain", p["seconds_per_image"], statistics.median(p["seconds_per_image"]), p["peak_rss_bytes"],
                       p["load_seconds"])  # fmt: skip
    return BenchReport(
        settings=s, plain=plain, steady=ours,
        time_overhead=ours.median_seconds / plain.median_seconds - 1,
        rss_overhead=ours.peak_rss_bytes / plain.peak_rss_bytes - 1,
        time_overhead_min=min(ours.seconds_per_image) / min(plain.seconds_per_image) - 1,
        time_overhead_unscored=(ours.median_seconds - ours.score_seconds) / plain.median_seconds - 1,
    )  # fmt: skip


def _steady_side(resolved: Resolved, cfg: Settings) -> SideResult:
    gaps: list[float] = []
    dones: list[ImageDone] = []
    last = [0.0]

    def on_event(event: object) -> None:
        if isinstance(event, ImageDone):
            dones.append(event)
        elif isinstance(event, GenerationResult):
            now = time.perf_counter()
            if last[0]:
                gaps.append(now - last[0])  # image 0 (worker start, load, warm-up) is not timed
            last[0] = now

    # A catalog of its own beside the images: bench runs are measurements, not the user's gallery.
    catalog = open_catalog(resolved.out_dir / "bench-catalog.db")
    try:
        with Supervisor(catalog, SupervisorOptions(), cfg=cfg) as sup:
            outcome = run(resolved, cfg, on_event=on_event, supervisor=sup)
            peak = worker_peak_rss(sup) or max(d.peak_rss_bytes for d in dones)
    finally:
        catalog.close()
    raise_failure(outcome)
    scores = [d.score_seconds for d in dones[1:]]
    return SideResult("steady", gaps, statistics.median(gaps), peak, dones[0].load_seconds,
                      statistics.median(scores) if scores else 0.0)  # fmt: skip


def worker_peak_rss(sup: Supervisor) -> int:
    """The worker process's peak resident set (VmHWM on Linux; 0 where it cannot be read)."""
    if sup.worker is None:
        return 0
    try:
        with open(f"/proc/{sup.worker.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0

