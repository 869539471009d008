"""A long session, measured: ``steady soak --images 1000``.

Runs jobs of ``per_job`` images (prompts cycling through a fixed list, models alternating when
several are given) through one supervisor whose worker is recycled by the policy, and writes to
``out``:
    samples.csv   every memory sample (about 2 per second): worker RSS/USS/VRAM, available RAM, swap
    images.csv    one row per image: time, worker pid, worker RSS right after it, seconds
    memory.png    worker RSS and USS, and available RAM, over time; recycles as grey lines
    report.json   the figures below, the policy, every recycle and worker death with its reason
    report.md     the same for people

With ``loras`` (``steady soak --loras a,b,c,d``) each job's prompt carries the next LoRA of the
list, then none, and round again (``<lora:NAME:1>``): the worker applies and removes them image
after image, which is what the LoRA-switching figure measures.

Figures: RSS drift = median worker RSS over the last 100 images against images 50-150 (target
< 2 %; a soak of 40-249 images compares its last quarter with its second quarter); jobs lost (a job that did not end 'done'); orphan files (images on disk without a catalog
row, rows without a file, temp files left); images per minute.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steady.config import Settings
from steady.jobs.memory import MIB, RecyclePolicy
from steady.jobs.protocol import MemorySample, Recycle
from steady.jobs.supervisor import Supervisor, SupervisorOptions, WorkerDied, worker_rss

PROMPTS = (
    "a small red circle at the top left on a blue background",
    "a large yellow square at the center",
    "a green cross on a black background",
    "a blue triangle at the bottom right",
    "a circle",
    "a small white square at the top on a purple background",
    "an orange triangle at the left",
    "a large pink cross on a gray background",
)


@dataclass
class SoakConfig:
    images: int = 1000
    per_job: int = 10
    models: list[str] = field(default_factory=lambda: [""])  # "" = the default model
    steps: int = 20
    cfg_scale: float = 5.0
    sampler: str = "Euler"
    width: int | None = None
    height: int | None = None
    seed: int = 1
    loras: list[str] = field(default_factory=list)  # LoRA names to cycle through, job by job, with none between rounds
    policy: RecyclePolicy = field(default_factory=RecyclePolicy)


@dataclass
class ImageRow:
    n: int  # 0-based over the whole soak
    t: float
    job_id: int
    index: int
    worker_pid: int
    rss_bytes: int
    seconds: float
    model: str


@dataclass
class SoakReport:
    images: int
    seconds: float
    images_per_minute: float
    rss_drift_percent: float | None  # median RSS of the last 100 images vs images 50-150
    rss_early_median: int | None
    rss_late_median: int | None
    peak_rss_bytes: int
    min_available_bytes: int
    jobs: int
    jobs_lost: int
    orphan_files: int
    orphan_rows: int
    temp_files: int
    worker_start_seconds: list[float]  # spawn to ready, per worker process
    load_seconds: list[float]  # model loads (one per worker, and per model switch)
    recycles: list[dict[str, Any]]
    deaths: list[dict[str, Any]]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_drift(rss: list[int]) -> tuple[float | None, int | None, int | None]:
    """(percent, early median, late median): images 50-150 against the last 100."""
    if len(rss) < 250:
        return None, None, None
    early, late = int(statistics.median(rss[50:150])), int(statistics.median(rss[-100:]))
    return round(100.0 * (late - early) / early, 3), early, late


def rss_drift_short(rss: list[int]) -> tuple[float | None, int | None, int | None]:
    """(percent, early median, late median) of a soak of 40-249 images: its second quarter (after
    the warm-up) against its last quarter."""
    n = len(rss)
    if n < 40:
        return None, None, None
    early, late = int(statistics.median(rss[n // 4: n // 2])), int(statistics.median(rss[-(n // 4):]))
    return round(100.0 * (late - early) / early, 3), early, late


def run_soak(c: SoakConfig, out: Path, cfg: Settings, echo: Any = print) -> SoakReport:
    from steady.catalog import open_catalog
    from steady.jobs.queue import JobQueue
    from steady.jobs.runner import prepare, submit
    from steady.params import GenerationRequest, GenerationResult

    out.mkdir(parents=True, exist_ok=True)
    images_dir = out / "images"
    rows: list[ImageRow] = []
    events: list[object] = []
    samples_file = (out / "samples.csv").open("w", newline="", encoding="utf-8")
    samples = csv.writer(samples_file)
    samples.writerow([f for f in MemorySample.__dataclass_fields__])
    kept: list[MemorySample] = []

    def on_sample(s: MemorySample) -> None:
        samples.writerow(list(asdict(s).values()))
        kept.append(s)

    t0, job_ids = time.monotonic(), []
    catalog = open_catalog(cfg.db_path)
    sup = Supervisor(catalog, SupervisorOptions(policy=c.policy), on_sample=on_sample, cfg=cfg)
    try:
        k = 0
        while len(rows) < c.images:
            model = c.models[k % len(c.models)]
            n = min(c.per_job, c.images - len(rows))
            prompt = PROMPTS[k % len(PROMPTS)]
            lora = (c.loras + [""])[k % (len(c.loras) + 1)] if c.loras else ""
            if lora:
                prompt += f" <lora:{lora}:1>"
            request = GenerationRequest(prompt=prompt, n_images=n, steps=c.steps,
                                        cfg_scale=c.cfg_scale, sampler=c.sampler, width=c.width, height=c.height,
                                        seed=c.seed + 1000 * k, model=model, out_dir=str(images_dir))  # fmt: skip
            job = submit(prepare(request, cfg, gpus=sup.gpus), catalog, claim=True)
            job_ids.append(job.id)

            def on_event(e: object, model: str = model, job_id: int = job.id) -> None:
                if isinstance(e, GenerationResult):
                    pid = sup.worker.pid if sup.worker else 0
                    rss = worker_rss(pid) or 0
                    rows.append(ImageRow(len(rows), round(time.monotonic() - t0, 3), job_id, e.index, pid, rss,
                                         round(e.seconds, 4), model or "default"))  # fmt: skip
                elif isinstance(e, (Recycle, WorkerDied)):
                    events.append(e)
                    echo(f"soak: {type(e).__name__} {json.dumps(asdict(e))}")

            sup.run(job, on_event)
            k += 1
            if k % 10 == 0:
                last = rows[-1]
                echo(f"soak: {len(rows)}/{c.images} images, {last.t:.0f} s, worker RSS {last.rss_bytes / MIB:.0f} MiB")
        seconds = time.monotonic() - t0
    finally:
        sup.close()
        samples_file.close()
    queue = JobQueue(catalog)
    lost = sum(1 for j in job_ids if queue.get(j).state != "done")
    with catalog.reading() as conn:
        paths = {r[0] for r in conn.execute("SELECT path FROM images WHERE run_id IN (SELECT run_id FROM jobs "
                                            f"WHERE id IN ({','.join('?' * len(job_ids))}))", job_ids)}  # fmt: skip
    catalog.close()
    on_disk = {str(p.resolve()) for p in images_dir.glob("*.png")}
    temps = [p for p in images_dir.iterdir() if p.name.endswith(".tmp")]
    drift, early, late = rss_drift([r.rss_bytes for r in rows])
    if drift is None:
        drift, early, late = rss_drift_short([r.rss_bytes for r in rows])
    report = SoakReport(
        images=len(rows), seconds=round(seconds, 1), images_per_minute=round(60 * len(rows) / seconds, 2),
        rss_drift_percent=drift, rss_early_median=early, rss_late_median=late,
        peak_rss_bytes=max((s.rss_bytes for s in kept), default=0),
        min_available_bytes=min((s.available_bytes for s in kept), default=0),
        jobs=len(job_ids), jobs_lost=lost, orphan_files=len(on_disk - paths), orphan_rows=len(paths - on_disk),
        temp_files=len(temps), worker_start_seconds=sup.start_seconds, load_seconds=sup.load_seconds,
        recycles=[asdict(e) for e in events if isinstance(e, Recycle)],
        deaths=[asdict(e) for e in events if isinstance(e, WorkerDied)],
        config={**asdict(c), "policy": asdict(c.policy)},
    )  # fmt: skip
    _write_outputs(out, report, rows, kept)
    return report


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "n/a"


def _write_outputs(out: Path, r: SoakReport, rows: list[ImageRow], kept: list[MemorySample]) -> None:
    from steady.charts import W, canvas, panel, save_atomic

    with (out / "images.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(list(ImageRow.__dataclass_fields__))
        w.writerows([list(asdict(row).values()) for row in rows])
    (out / "report.json").write_text(json.dumps(r.to_dict(), indent=1), encoding="utf-8")
    img, draw = canvas(2)
    marks = [e["t"] for e in r.recycles]
    panel(draw, 0, "worker memory (MiB) over time (s)", {
        "RSS": [(s.t, s.rss_bytes / MIB) for s in kept], "USS": [(s.t, s.uss_bytes / MIB) for s in kept],
        "VRAM": [(s.t, s.vram_bytes / MIB) for s in kept if s.vram_bytes],
    }, x_label="s", markers=marks)  # fmt: skip
    panel(draw, W, "system available RAM (MiB) over time (s)",
          {"available": [(s.t, s.available_bytes / MIB) for s in kept]}, x_label="s", markers=marks)  # fmt: skip
    save_atomic(img, out / "memory.png")
    drift = "n/a (fewer than 40 images)" if r.rss_drift_percent is None else f"{r.rss_drift_percent:+.2f} %"
    lines = [
        "# Soak report", "",
        f"- images: {r.images} in {r.seconds:.0f} s ({r.images_per_minute:.1f} per minute), {r.jobs} jobs",
        f"- RSS drift (median of the last 100 images vs images 50-150; under 250 images, the last quarter vs "
        f"the second): {drift}",
        f"- peak worker RSS {r.peak_rss_bytes / MIB:.0f} MiB; lowest available RAM {r.min_available_bytes / MIB:.0f} MiB",
        f"- jobs lost: {r.jobs_lost}; orphan files: {r.orphan_files}; rows without a file: {r.orphan_rows}; "
        f"temp files left: {r.temp_files}",
        f"- recycles: {len(r.recycles)}; worker deaths: {len(r.deaths)}",
        f"- cost of a recycle: worker start (median) {_median(r.worker_start_seconds)} s + model load (median) "
        f"{_median(r.load_seconds)} s, over {len(r.worker_start_seconds)} starts and {len(r.load_seconds)} loads", "",
    ]  # fmt: skip
    lines += [f"  - at {e['t']:.0f} s after {e['images']} images: {e['reason']}" for e in r.recycles]
    lines += ["", "![memory](memory.png)", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
