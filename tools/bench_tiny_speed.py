"""Seconds per 64x64 image of the embedded model at 20 steps (CFG 5, Euler) on this CPU, through
the same load and render path as `steady generate`, for 1 and 2 torch threads.

    python tools/bench_tiny_speed.py [-n 12] [--model FOLDER]   # default: the embedded model
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steady.models.default import embedded_model_path
from steady.models.detect import inspect_model
from steady.params import ImageParams
from steady.worker.loader import load_pipeline
from steady.worker.pipeline import quiet_libraries, render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=12)
    ap.add_argument("--model", default=None, help="a model folder (a training run's --out); default: the embedded model")
    args = ap.parse_args()
    quiet_libraries()
    pipe = load_pipeline(inspect_model(args.model or embedded_model_path()), device="cpu", dtype=torch.float32)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times = []
        for i in range(args.n + 2):
            p = ImageParams(prompt="a small red circle at the top left on a blue background", negative_prompt="",
                            steps=20, cfg_scale=5.0, width=64, height=64, seed=i, sampler="Euler", clip_skip=1,
                            model_name="tiny", model_hash="", model_arch="sd1", device="cpu", dtype="float32",
                            steady_version="")  # fmt: skip
            t = time.perf_counter()
            render(pipe, p, "cpu")
            times.append(time.perf_counter() - t)
        times = times[2:]  # warm-up
        print(f"threads={threads}: median {statistics.median(times):.3f} s, best {min(times):.3f} s per image "
              f"(n={len(times)}, torch {torch.__version__})")  # fmt: skip


if __name__ == "__main__":
    main()
