"""Is "put the shape where the prompt says" learnable by the tiny UNet at all, and how fast? The
easiest form of the task: the UNet sees pure noise (t = 999, where nothing but the prompt tells
where the shape is) and regresses the clean latent directly (``--target x0``), or, in the shipped
model's own parameterisation, predicts the noise at t >= --t-min with the loss weighted to the clean
latent's error (``--target eps``).

    python tools/position_binding.py --phases position-only:400            # one red circle on blue, nine places
    python tools/position_binding.py --phases full:1000                    # the training scenes, every attribute
    python tools/position_binding.py --phases position-only:400 --ramps    # + fixed x/y ramps on the input
    python tools/position_binding.py --init shipped --target eps --lr 5e-4 \
        --phases position-only:400,position-only+colours:400,colours+full:400   # the curriculum (session 8)

``--init shipped`` starts from the weights in the package at the time (session 8's runs: the
session-7 weights, 9d44ab0acc); scene kinds and the phase syntax are ``steady.tiny.binding``'s.

Every 50 steps: the x0 error with the prompt's true position / with another position word, on a
fresh batch of each scene kind in play and of the training scenes. 1.0 means the model does not use
the position word at all; it rises above 1 once the word decides the place.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steady.models.default import embedded_model_path
from steady.tiny import arch as A
from steady.tiny.binding import kind_scenes, named_caption, parse_phases
from steady.tiny.data import dataset, render
from steady.tiny.scenes import POSITION_NAMES, caption
from steady.tiny.train import Tokens, encode_means, training_noise


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--phases",
        default="full:400",
        help="comma list of DATA[+DATA]:STEPS; DATA is position-only (a large red circle on blue), "
        "colours (a large circle, any colours) or full (the training scenes); '+' splits each batch",
    )
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ramps", action="store_true", help="add fixed x and y ramps to the UNet's input")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--init",
        choices=("fresh", "shipped"),
        default="fresh",
        help="start the UNet and text encoder from nothing or from the shipped weights",
    )
    ap.add_argument(
        "--target",
        choices=("x0", "eps"),
        default="x0",
        help="x0: regress the clean latent from pure noise; eps: the shipped model's own "
        "parameterisation, t in [--t-min, 999] of SD's schedule, the loss weighted to the x0 error",
    )
    ap.add_argument("--t-min", type=int, default=950)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(Path(embedded_model_path()) / "vae", torch_dtype=torch.float32).eval()
    rng = np.random.default_rng(0)

    def scenes_of(kind: str, n: int) -> list:
        return [x.scene for x in dataset(1, n, drop_prob=0.0)] if kind == "full" else kind_scenes(kind, rng, n)

    phases = [(list(p.kinds), p.steps) for p in parse_phases(args.phases, "--phases")]
    data = {}
    for kind in sorted({k for kinds, _ in phases for k in kinds} | {"full"}):
        sc = scenes_of(kind, 4000 if kind == "full" else 2000)
        data[kind] = (sc, encode_means(vae, [render(x) for x in sc]) * vae.config.scaling_factor)
    arch = A.Architecture(vae_channels=(8, 16, 32), vae_groups=1)
    if args.init == "shipped":
        from steady.tiny.train import load_text_unet

        text, unet = load_text_unet(str(embedded_model_path()))
    else:
        text, unet = A.build_text(arch), A.build_unet(arch)
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(**A.SCHEDULE)
    abar = sched.alphas_cumprod
    ramp = torch.zeros(1, 4, 16, 16)
    if args.ramps:
        r = torch.linspace(-1, 1, 16)
        ramp[0, 0], ramp[0, 1] = r[None, :], r[:, None]
    params = [*text.parameters(), *unet.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr)
    tokens, crng, gen = Tokens(), np.random.default_rng(1), torch.Generator().manual_seed(2)

    def x0_error(x: torch.Tensor, ts: torch.Tensor, caps: list[str], target: torch.Tensor) -> torch.Tensor:
        pred = unet(x, ts, text(tokens(caps)).last_hidden_state).sample
        if args.target == "x0":
            return F.mse_loss(pred, target)
        a = abar[ts].view(-1, 1, 1, 1)
        return F.mse_loss((x - (1 - a).sqrt() * pred) / a.sqrt(), target)

    def batch(kinds: list[str]) -> tuple[list[Any], torch.Tensor, torch.Tensor, torch.Tensor]:
        scenes, lats = [], []
        for j, kind in enumerate(kinds):
            sc, lat = data[kind]
            idx = crng.integers(0, len(sc), 32 // len(kinds) + (j < 32 % len(kinds)))
            scenes += [sc[i] for i in idx]
            lats.append(lat[torch.from_numpy(idx)])
        target = torch.cat(lats)
        if args.target == "x0":
            return scenes, target, torch.randn(32, 4, 16, 16, generator=gen) + ramp, torch.full((32,), 999)
        ts = torch.randint(args.t_min, 1000, (32,), generator=gen)
        return scenes, target, sched.add_noise(target, training_noise((32, 4, 16, 16), 0.15, gen), ts) + ramp, ts

    step = 0
    for kinds, n in phases:
        for _ in range(n):
            scenes, target, x, ts = batch(kinds)
            caps = [
                named_caption(s, s.position) if kinds == ["position-only"] else caption(s, crng, 0.25) for s in scenes
            ]
            loss = x0_error(x, ts, caps, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if step % 50 == 0:
                ratios = []
                for kind in dict.fromkeys([*kinds, "full"]):
                    scenes, target, x, ts = batch([kind])
                    right = [named_caption(s, s.position) for s in scenes]
                    wrong = [
                        named_caption(s, str(crng.choice([p for p in POSITION_NAMES if p != s.position])))
                        for s in scenes
                    ]
                    with torch.no_grad():
                        err = [x0_error(x, ts, c, target).item() for c in (right, wrong)]
                    ratios.append(f"{kind} {err[1] / err[0]:.3f}")
                print(f"step {step} ({'+'.join(kinds)}): loss {loss.item():.4f}, x0 error wrong/right position word: "
                      + ", ".join(ratios), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
