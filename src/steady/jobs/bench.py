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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from steady.catalog.db import open_catalog
from steady.config import Settings
from steady.jobs.protocol import ImageDone, Progress
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
    p = _plain_child(resolved, s.images, out)
    plain = SideResult("plain", p["seconds_per_image"], statistics.median(p["seconds_per_image"]), p["peak_rss_bytes"],
                       p["load_seconds"])  # fmt: skip
    return BenchReport(
        settings=s, plain=plain, steady=ours,
        time_overhead=ours.median_seconds / plain.median_seconds - 1,
        rss_overhead=ours.peak_rss_bytes / plain.peak_rss_bytes - 1,
        time_overhead_min=min(ours.seconds_per_image) / min(plain.seconds_per_image) - 1,
        time_overhead_unscored=(ours.median_seconds - ours.score_seconds) / plain.median_seconds - 1,
    )  # fmt: skip


def _plain_child(resolved: Resolved, images: int, out: str) -> dict:
    """``steady.worker.plain`` with ``resolved``'s settings (model, prompt, sampler, steps, size, seed,
    CFG, device, dtype, the plan's threads) in a process of its own (its peak RSS its own): its
    PlainResult."""
    r = resolved.request
    plain_settings = {"model_path": str(resolved.model.path), "prompt": r.prompt, "steps": r.steps, "width": r.width,
                      "height": r.height, "images": images, "sampler": r.sampler, "seed": r.seed,
                      "cfg_scale": r.cfg_scale, "device": resolved.device, "dtype": resolved.dtype,
                      "threads": resolved.memory.threads if resolved.memory is not None else None,
                      "out_dir": out}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "steady.worker.plain", json.dumps(plain_settings)], check=True,
                          capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


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



# --- the CPU suite: float32 against --dtype auto, and this machine's ceiling -----------------------
@dataclass
class SuiteRow:
    model: str
    side: int
    asked: str  # the --dtype given: float32 or auto
    dtype: str  # what ran
    steps: int
    seconds_per_step: float | None  # the timed image's, from step 2 on (step 1 carries encoding); None: plain
    seconds_per_image: float  # encode + denoise + decode + adherence score, as the worker reports it
    load_seconds: float
    peak_rss_bytes: int  # the worker's VmHWM
    step_tflops: float | None = None  # one CFG UNet step's FLOPs over its seconds
    of_ceiling: float | None = None  # step_tflops over the matmul ceiling in the dtype that ran
    backend: str = "torch"  # what ran the UNet; "plain": a plain diffusers loop (the floor for overhead)
    first_image_seconds: float = 0.0  # the warm-up image (with OpenVINO: its conversion or its compile)
    score_seconds: float = 0.0  # of seconds_per_image, the adherence score's (as many UNet calls as 4 CFG steps)


@dataclass
class SuiteReport:
    threads: int
    matmul_tflops: dict[str, float]  # best 4096^3 matmul, float32 and bfloat16
    rows: list[SuiteRow]

    def to_dict(self) -> dict:
        return asdict(self)

    def speedups(self) -> list[tuple[str, int, float, float]]:
        """(model, side, auto's per-step speed-up over float32, per-image speed-up)."""
        out = []
        for row in self.rows:
            if row.asked != "auto" or row.backend != "torch":
                continue
            base = next(r for r in self.rows if (r.model, r.side, r.asked) == (row.model, row.side, "float32"))
            out.append((row.model, row.side, base.seconds_per_step / row.seconds_per_step,
                        base.seconds_per_image / row.seconds_per_image))  # fmt: skip
        return out

    def markdown(self) -> str:
        lines = [f"threads {self.threads}; matmul ceiling 4096³: float32 {self.matmul_tflops['float32']:.3f}, "
                 f"bfloat16 {self.matmul_tflops['bfloat16']:.3f} TFLOP/s", "",
                 "| model | size | --dtype | ran as | backend | steps | s/step | s/image | TFLOP/s per step | of ceiling "
                 "| load s | first image s | peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in self.rows:
            tf = f"{r.step_tflops:.3f}" if r.step_tflops is not None else "–"
            share = f"{r.of_ceiling:.0%}" if r.of_ceiling is not None else "–"
            step = f"{r.seconds_per_step:.3f}" if r.seconds_per_step is not None else "–"
            lines.append(f"| {r.model} | {r.side}² | {r.asked} | {r.dtype} | {r.backend} | {r.steps} | "
                         f"{step} | {r.seconds_per_image:.2f} | {tf} | {share} | {r.load_seconds:.1f} | "
                         f"{r.first_image_seconds:.1f} | {r.peak_rss_bytes / 2**20:.0f} |")  # fmt: skip
        lines.append("")
        for model, side, step, image in self.speedups():
            lines.append(f"auto over float32, {model} {side}²: {step:.2f}× per step, {image:.2f}× per image")
        for row in self.rows:
            base = next((r for r in self.rows if (r.model, r.side, r.asked, r.backend) == (row.model, row.side, "auto",
                                                                                            "torch")), None)  # fmt: skip
            if row.backend == "plain" and base is not None:
                lines.append(f"steady's path over a plain diffusers loop (auto), {row.model} {row.side}²: "
                             f"{base.seconds_per_image / row.seconds_per_image - 1:+.1%} per image with its adherence "
                             f"score, {(base.seconds_per_image - base.score_seconds) / row.seconds_per_image - 1:+.1%} "
                             "without")  # fmt: skip
            elif row.backend != "torch" and base is not None:
                lines.append(f"{row.backend} over torch (auto), {row.model} {row.side}²: "
                             f"{base.seconds_per_step / row.seconds_per_step:.2f}× per step, "
                             f"{base.seconds_per_image / row.seconds_per_image:.2f}× per image")  # fmt: skip
        return "\n".join(lines)


def run_suite(cfg: Settings, model: str = "", sides: tuple[int, ...] = (256, 512), steps: int = 8,
              echo: Callable[[str], None] = print, openvino: bool = False) -> SuiteReport:  # fmt: skip
    """The embedded model at its 64², and ``model`` (a full-size checkpoint) at each of ``sides``:
    float32 against --dtype auto through the real path, one warm-up image and one timed image each
    (a fresh worker per row, so that each row's load and peak are its own); with ``openvino``, --dtype
    auto on --backend openvino too (its warm-up image converts the UNet, or compiles the cached IR);
    last, auto's settings in a plain diffusers loop (``_plain_row``), the floor for overhead."""
    from steady.jobs.scratch import Scratch

    ceiling = _ceiling_child({})
    cases = [("", 64)] + [(model, side) for side in sides if model]
    rows: list[SuiteRow] = []
    for name, side in cases:
        flops = _ceiling_child({"model": name or str(_embedded()), "side": side})["unet_step_flops"]
        for asked, backend in (("float32", "torch"), ("auto", "torch"), *((("auto", "openvino"),) if openvino else ())):
            echo(f"bench suite: {name or 'embedded'} {side}² --dtype {asked} --backend {backend}")
            request = GenerationRequest(prompt=BenchSettings.prompt, steps=steps, width=side, height=side, seed=1,
                                        n_images=2, model=name, dtype=asked, backend=backend)  # fmt: skip
            paces: list[float] = []
            with Scratch(cfg, SupervisorOptions()) as scratch:
                made = scratch.run(request, on_event=lambda e: paces.append(e.seconds_per_step)
                                   if isinstance(e, Progress) and e.image_index == 1 and e.step == e.steps else None)  # fmt: skip
                peak = worker_peak_rss(scratch.supervisor)
            timed, dtype = made.done[1], made.images[1].params.dtype
            per_step = paces[-1]
            step_tflops = flops / per_step / 1e12
            rows.append(SuiteRow(name or "embedded", side, asked, dtype, steps, per_step,
                                 timed.seconds + timed.score_seconds, made.done[0].load_seconds, peak, step_tflops,
                                 step_tflops / ceiling["matmul_tflops"][dtype], backend,
                                 made.done[0].seconds, timed.score_seconds))  # fmt: skip
        echo(f"bench suite: {name or 'embedded'} {side}² --dtype auto, a plain diffusers loop")
        rows.append(_plain_row(cfg, name, side, steps))
    return SuiteReport(ceiling["threads"], ceiling["matmul_tflops"], rows)


def _plain_row(cfg: Settings, name: str, side: int, steps: int) -> SuiteRow:
    """The floor for overhead: --dtype auto's settings (model, dtype, device, threads, sampler,
    CFG) in a plain diffusers loop of its own process, one warm-up image and one timed."""
    out = tempfile.mkdtemp(prefix="steady-suite-plain-")
    request = GenerationRequest(prompt=BenchSettings.prompt, steps=steps, width=side, height=side, seed=1,
                                n_images=1, model=name, dtype="auto", out_dir=out)  # fmt: skip
    resolved = prepare(request, cfg)
    p = _plain_child(resolved, 1, out)
    return SuiteRow(name or "embedded", side, "auto", resolved.dtype, steps, None, p["seconds_per_image"][0],
                    p["load_seconds"], p["peak_rss_bytes"], backend="plain")  # fmt: skip


def _embedded() -> Path:
    from steady.models.default import embedded_model_path

    return embedded_model_path()


def _ceiling_child(args: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "steady.worker.ceiling", json.dumps(args)], check=True,
                          capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])
