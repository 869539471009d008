"""`steady bench`: the overhead of `steady generate` over a plain diffusers loop, measured.

Each side runs in its own child process (so peak RSS is its own): load the same model the
same way, generate one warm-up image, then N timed images with the same prompt, sampler,
steps, size and seeds. The plain side calls the pipeline and saves the PNG with PIL, as a
plain script would; the steady side runs the whole engine for one run of N+1 images (render,
atomic PNG with metadata, catalog row, progress callback).

Run as a module for one side: python -m steady.bench plain|steady '<json settings>'
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


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


@dataclass
class BenchReport:
    settings: BenchSettings
    plain: SideResult
    steady: SideResult
    time_overhead: float  # steady median / plain median - 1
    rss_overhead: float
    # Best image against best image: the figure least disturbed by other load on the machine,
    # which on 2 cores moves single images by ±10 % (more than the engine could add).
    time_overhead_min: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_side(side: str, s: BenchSettings) -> SideResult:
    from steady.config import settings
    from steady.engine import check_and_plan, iter_request
    from steady.params import GenerationRequest

    request = GenerationRequest(
        prompt=s.prompt, steps=s.steps, width=s.width, height=s.height, sampler=s.sampler,
        seed=s.seed, n_images=1, model=s.model, out_dir=tempfile.mkdtemp(prefix="steady-bench-"),
    )
    cfg = settings()
    plan = check_and_plan(request, cfg)
    from steady.worker.loader import load_pipeline
    from steady.worker.pipeline import DTYPES
    from steady.worker.schedulers import make_scheduler

    started = time.perf_counter()
    pipe = load_pipeline(plan.info, device=plan.device, dtype=DTYPES[plan.dtype])
    load_seconds = time.perf_counter() - started
    times = []
    if side == "plain":
        import torch

        for i in range(s.images + 1):  # image 0 warms up
            seed = s.seed + i
            t0 = time.perf_counter()
            pipe.scheduler = make_scheduler(s.sampler, pipe.scheduler.config, seed)
            image = pipe(
                s.prompt, num_inference_steps=s.steps, width=plan.width, height=plan.height,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
            image.save(Path(request.out_dir) / f"plain-{i}.png")  # what a plain script does
            del image
            if i:
                times.append(time.perf_counter() - t0)
    else:
        # One run of N+1 images, as `steady generate -n` does; an image's time is the gap
        # between two finished images (render + PNG with metadata + catalog row + progress).
        request.n_images = s.images + 1
        t0 = time.perf_counter()
        for i, _ in enumerate(iter_request(request, cfg=cfg, loaded=pipe, plan=plan)):
            now = time.perf_counter()
            if i:
                times.append(now - t0)
            t0 = now
    return SideResult(side, times, statistics.median(times), _peak_rss_bytes(), load_seconds)


def run_bench(s: BenchSettings) -> BenchReport:
    results = {}
    for side in ("plain", "steady"):
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        out = subprocess.run(
            [sys.executable, "-m", "steady.bench", side, json.dumps(asdict(s))],
            check=True, capture_output=True, text=True, env=env,
        )
        results[side] = SideResult(**json.loads(out.stdout.strip().splitlines()[-1]))
    plain, ours = results["plain"], results["steady"]
    return BenchReport(
        settings=s, plain=plain, steady=ours,
        time_overhead=ours.median_seconds / plain.median_seconds - 1,
        rss_overhead=ours.peak_rss_bytes / plain.peak_rss_bytes - 1,
        time_overhead_min=min(ours.seconds_per_image) / min(plain.seconds_per_image) - 1,
    )


def main(argv: list[str]) -> None:
    side, raw = argv[0], argv[1]
    result = run_side(side, BenchSettings(**json.loads(raw)))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
