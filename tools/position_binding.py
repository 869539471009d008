"""Is "put the shape where the prompt says" learnable by the tiny UNet at all, and how fast? The
easiest form of the task: the UNet sees pure noise (t = 999 of a zero-terminal-SNR schedule, where
nothing but the prompt tells where the shape is) and regresses the clean latent directly.

    python tools/position_binding.py --data position-only [--steps 400]   # one red circle on blue, nine places
    python tools/position_binding.py --data full --steps 1000             # the training scenes, every attribute
    python tools/position_binding.py --data position-only --ramps         # + fixed x/y ramps on the input

Every 50 steps: the x0 error with the prompt's true position / with another position word, on the
training batch. 1.0 means the model does not use the position word at all; it rises above 1 once the
word decides the place.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from steady.models.default import embedded_model_path
from steady.tiny import arch as A
from steady.tiny.data import dataset, make_scene, render
from steady.tiny.scenes import POSITION_NAMES, caption, position_phrase
from steady.tiny.train import Tokens, to_tensor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=("position-only", "full"), required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ramps", action="store_true", help="add fixed x and y ramps to the UNet's input")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(Path(embedded_model_path()) / "vae", torch_dtype=torch.float32).eval()
    rng = np.random.default_rng(0)
    if args.data == "position-only":
        scenes = [make_scene(rng, "circle", "red", "large", str(rng.choice(POSITION_NAMES)), "blue") for _ in range(2000)]
        images = np.stack([render(s) for s in scenes])
    else:
        samples = list(dataset(1, 4000, drop_prob=0.0))
        scenes, images = [s.scene for s in samples], np.stack([s.image for s in samples])
    with torch.no_grad():
        lat = torch.cat([vae.encode(to_tensor(images[i:i + 500])).latent_dist.mean for i in range(0, len(images), 500)])
    lat = lat * vae.config.scaling_factor
    arch = A.Architecture(vae_channels=(8, 16, 32), vae_groups=1)
    text, unet = A.build_text(arch), A.build_unet(arch)
    ramp = torch.zeros(1, 4, 16, 16)
    if args.ramps:
        r = torch.linspace(-1, 1, 16)
        ramp[0, 0], ramp[0, 1] = r[None, :], r[:, None]
    params = [*text.parameters(), *unet.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr)
    tokens, crng, gen = Tokens(), np.random.default_rng(1), torch.Generator().manual_seed(2)

    def prompt(i: int, pos: str) -> str:
        if args.data == "position-only":
            return f"a large red circle {position_phrase(pos)} on a blue background"
        s = scenes[i]
        return f"a {s.size} {s.colour} {s.shape} {position_phrase(pos)} on a {s.background} background"

    t999 = torch.full((32,), 999)
    for step in range(args.steps):
        idx = crng.integers(0, len(scenes), 32)
        caps = [prompt(i, scenes[i].position) if args.data == "position-only" else caption(scenes[i], crng, 0.25)
                for i in idx]  # fmt: skip
        x = torch.randn(32, 4, 16, 16, generator=gen) + ramp
        target = lat[torch.from_numpy(idx)]
        loss = F.mse_loss(unet(x, t999, text(tokens(caps)).last_hidden_state).sample, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % 50 == 0:
            right = [prompt(i, scenes[i].position) for i in idx]
            wrong = [prompt(i, str(crng.choice([p for p in POSITION_NAMES if p != scenes[i].position]))) for i in idx]
            with torch.no_grad():
                err = [F.mse_loss(unet(x, t999, text(tokens(c)).last_hidden_state).sample, target).item()
                       for c in (right, wrong)]  # fmt: skip
            print(f"step {step + 1}: loss {loss.item():.4f}, x0 error wrong/right position word {err[1] / err[0]:.3f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
