"""Speed and memory of `steady import` over N small PNGs, first pass and idempotent second pass.

Makes N 64x64 PNGs in a temp folder (a third each with A1111 `parameters`, a ComfyUI `prompt`
graph, and no metadata; 50 prompts, so images group into runs), imports them into a fresh
catalog in this process, then imports again (which must add nothing). Peak RSS growth is the
highest RSS sampled at each file (psutil) minus the RSS just before that pass. Prints one
JSON line.

    python tools/bench_import.py [-n 10000] [--batch 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from PIL import Image
from PIL.PngImagePlugin import PngInfo as PilPngInfo

from steady.catalog import open_catalog
from steady.catalog.importer import ImportReport, import_folder

PROMPTS = 50
FILES_PER_FOLDER = 1000


@dataclass
class PassFigures:
    seconds: float
    images_per_s: float  # files handled per second (added, known or duplicate)
    added: int
    already_known: int
    skipped: int
    rss_before_mib: float
    peak_rss_growth_mib: float


def make_pngs(root: Path, n: int) -> None:
    """N distinct small PNGs (the pixel colour encodes the index), in folders of 1,000."""
    for i in range(n):
        folder = root / f"batch-{i // FILES_PER_FOLDER:03d}"
        folder.mkdir(exist_ok=True)
        prompt = f"a lighthouse on a cliff, style {i % PROMPTS}"
        chunks = PilPngInfo()
        if i % 3 == 0:
            chunks.add_text("parameters", f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                                          f"CFG scale: 7, Seed: {i}, Size: 64x64, Model hash: 6ce0161689, Model: sd15")
        elif i % 3 == 1:
            chunks.add_text("prompt", json.dumps(_comfy_graph(prompt, i)))
        colour = (i % 256, (i // 256) % 256, (i // 65536) % 256)
        Image.new("RGB", (64, 64), colour).save(folder / f"{i:06d}.png", pnginfo=chunks)


def _comfy_graph(prompt: str, seed: int) -> dict:
    return {
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 20, "cfg": 8, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    }


def timed_pass(db: Path, root: Path, batch: int) -> PassFigures:
    process = psutil.Process()
    before = process.memory_info().rss
    peak = before

    def on_progress(done: int, total: int) -> None:
        nonlocal peak
        peak = max(peak, process.memory_info().rss)

    with open_catalog(db) as catalog:
        started = time.perf_counter()
        report: ImportReport = import_folder(catalog, root, on_progress=on_progress, batch=batch)
        seconds = time.perf_counter() - started
    return PassFigures(
        seconds=round(seconds, 2), images_per_s=round(report.files_seen / seconds, 1), added=report.added,
        already_known=report.already_known, skipped=report.skipped, rss_before_mib=round(before / 2**20, 1),
        peak_rss_growth_mib=round((peak - before) / 2**20, 1),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10_000, help="How many PNGs (default 10000).")
    ap.add_argument("--batch", type=int, default=500, help="Files per transaction (default 500).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as temp:
        # 1. The files.
        root = Path(temp) / "pngs"
        root.mkdir()
        started = time.perf_counter()
        make_pngs(root, args.n)
        made_s = time.perf_counter() - started
        # 2. First pass into a fresh catalog, 3. the second, idempotent pass.
        db = Path(temp) / "catalog.db"
        first = timed_pass(db, root, args.batch)
        second = timed_pass(db, root, args.batch)
        assert second.added == 0, "re-import added images"
        result = {
            "n": args.n, "batch": args.batch, "make_files_s": round(made_s, 1), "first": asdict(first),
            "second": asdict(second), "catalog_mib": round(db.stat().st_size / 2**20, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
