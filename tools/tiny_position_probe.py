"""Does the prompt's position word move the shape? One seed, five position words, the checker's
verdict of where the shape landed; and how much each word changes the model's image estimate
(x0 from the epsilon prediction) at high timesteps, where the shape's place is decided.

    python tools/tiny_position_probe.py [--model FOLDER] [--seeds 8]   # default: the embedded model

A model that ignores the word prints the same row of positions for every word.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from steady.models.default import embedded_model_path
from steady.models.detect import inspect_model
from steady.tiny.checker import check
from steady.tiny.scenes import position_phrase
from steady.worker.loader import load_pipeline
from steady.worker.pipeline import quiet_libraries

WORDS = ("top left", "top right", "bottom left", "bottom right", "center")


def prompt_for(word: str) -> str:
    return f"a large red circle {position_phrase(word)} on a blue background"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    quiet_libraries()
    torch.set_num_threads(2)
    pipe = load_pipeline(inspect_model(args.model or embedded_model_path()), device="cpu", dtype=torch.float32)
    from diffusers import DDPMScheduler, EulerDiscreteScheduler

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    alphas = DDPMScheduler.from_config(pipe.scheduler.config).alphas_cumprod
    embeds = {w: pipe.encode_prompt(prompt_for(w), "cpu", 1, False)[0] for w in WORDS}
    noise = torch.randn(8, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    print("x0 estimate at timestep t: where each word differs most from the mean of the five (row, col of 16x16), and by how much")
    for t in (999, 900, 800, 700, 500):
        a = alphas[t]
        x = noise * (1 - a).sqrt()
        estimates = []
        with torch.inference_mode():
            for w in WORDS:
                eps = pipe.unet(x, torch.full((8,), t), encoder_hidden_states=embeds[w].expand(8, -1, -1)).sample
                estimates.append(((x - (1 - a).sqrt() * eps) / a.sqrt()).mean(0))
        mean = torch.stack(estimates).mean(0)
        cells = []
        for w, e in zip(WORDS, estimates):
            diff = (e - mean).abs().sum(0)
            row, col = np.unravel_index(int(diff.argmax()), diff.shape)
            cells.append(f"{w} ({row},{col}) {float(diff.max()):.2f}")
        print(f"  t={t}: " + " | ".join(cells))
    print(f"checker's position of the shape, seeds 0..{args.seeds - 1} (20 Euler steps, CFG 5):")
    followed = 0
    for w in WORDS:
        got = []
        for seed in range(args.seeds):
            image = pipe(prompt_for(w), num_inference_steps=20, guidance_scale=5.0, height=64, width=64,
                         generator=torch.Generator().manual_seed(seed)).images[0]  # fmt: skip
            got.append(check(np.array(image), prompt_for(w)).estimate.position)
        followed += sum(g == w for g in got)
        print(f"  {w:12s} " + ", ".join(str(g) for g in got))
    print(f"shape where the word says: {followed} of {len(WORDS) * args.seeds}")


if __name__ == "__main__":
    main()
