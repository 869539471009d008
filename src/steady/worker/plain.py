"""The plain side of `steady bench`: what a user's own diffusers script does, nothing more.

    python -m steady.worker.plain '<json PlainSettings>'   # prints one JSON line: PlainResult

Loads the model the way steady's worker does (same loader, device, dtype and threads), then
calls the pipeline for a warm-up image and N timed ones with the same prompt, sampler, steps,
size and seeds as the steady side, and saves each PNG with PIL. Runs in its own process so its
peak RSS is its own.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class PlainSettings:
    model_path: str
    prompt: str
    steps: int
    width: int
    height: int
    images: int  # timed images (one more is made first, to warm up)
    sampler: str
    seed: int
    cfg_scale: float
    device: str
    dtype: str
    threads: int | None
    out_dir: str


@dataclass
class PlainResult:
    seconds_per_image: list[float]
    peak_rss_bytes: int
    load_seconds: float


def run(s: PlainSettings) -> PlainResult:
    import torch

    from steady.models.detect import inspect_model
    from steady.worker.loader import load_pipeline
    from steady.worker.pipeline import DTYPES, quiet_libraries
    from steady.worker.schedulers import make_scheduler

    quiet_libraries()
    if s.threads:
        torch.set_num_threads(s.threads)
    started = time.perf_counter()
    pipe = load_pipeline(inspect_model(s.model_path), device=s.device, dtype=DTYPES[s.dtype])
    load_seconds = time.perf_counter() - started
    times = []
    for i in range(s.images + 1):  # image 0 warms up
        seed = s.seed + i
        t0 = time.perf_counter()
        pipe.scheduler = make_scheduler(s.sampler, pipe.scheduler.config, seed)
        image = pipe(s.prompt, num_inference_steps=s.steps, width=s.width, height=s.height,
                     guidance_scale=s.cfg_scale, generator=torch.Generator("cpu").manual_seed(seed)).images[0]  # fmt: skip
        image.save(Path(s.out_dir) / f"plain-{i}.png")
        del image
        if i:
            times.append(time.perf_counter() - t0)
    return PlainResult(times, _peak_rss_bytes(), load_seconds)


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main(argv: list[str]) -> None:
    result = run(PlainSettings(**json.loads(argv[0])))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
