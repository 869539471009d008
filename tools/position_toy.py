"""Can the tiny UNet learn position at all? A position-only toy: one large red circle on blue,
nine places, captions "a large red circle at the top left on a blue background" (position left out
25 % of the time, empty 10 %). The shipped VAE, the shipped UNet/text architecture from scratch.

    python tools/position_toy.py --variant eps|ztsnr|posemb --out DIR [--steps 1200] [--threads 1]

Variants:
  eps     SD 1.x schedule, epsilon prediction, offset noise 0.15, min-SNR 5 (the shipped recipe).
  ztsnr   the same betas rescaled to zero terminal SNR (Lin et al. 2023), v-prediction,
          "trailing" timesteps when sampling: at t = 999 the noisy latent holds no image at all.
  posemb  eps plus a learned additive map on the UNet's input (not a standard SD part): an upper
          bound of what knowing its own position gives the UNet.

Flags on top of any variant: --high-x0 (the image error weighs at least 1 at every timestep),
--fixed-pos (fixed x/y ramps added to the UNet's input), --text-emb (UNet addition_embed_type
"text": the pooled prompt added to the time embedding), --name (file names of the outputs).

Prints position accuracy (checker) of 9 places x 4 seeds every ``--eval-every`` steps, the number
of places each seed lands in over the nine words, and the x0 error with a wrong position word over
the right one at t = 999/900/700/500; writes a sample sheet per evaluation and NAME.json to --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from steady.models.default import embedded_model_path
from steady.tiny import arch as A
from steady.tiny.checker import analyse
from steady.tiny.data import make_scene, render
from steady.tiny.scenes import POSITION_NAMES, caption, position_phrase
from steady.tiny.train import Tokens, encode_means, lr_at, param_groups, to_uint8, training_noise


def schedule_kwargs(variant: str) -> dict:
    kw = dict(A.SCHEDULE)
    if variant == "ztsnr":
        kw.update(rescale_betas_zero_snr=True, prediction_type="v_prediction")
    return kw


def sampler(variant: str):
    from diffusers import EulerDiscreteScheduler

    if variant == "ztsnr":
        return EulerDiscreteScheduler(**schedule_kwargs(variant), timestep_spacing="trailing")
    return EulerDiscreteScheduler(**A.SCHEDULE, steps_offset=1, timestep_spacing="leading")


def prompt_at(pos: str) -> str:
    return f"a large red circle {position_phrase(pos)} on a blue background"


@torch.no_grad()
def evaluate(variant, unet, text, vae, tokens, scale, bias, seeds=4, cfg=5.0, sheet=None):
    prompts, wanted = [], []
    for pos in POSITION_NAMES:
        for s in range(seeds):
            prompts.append(prompt_at(pos))
            wanted.append(pos)
    sched = sampler(variant)
    sched.set_timesteps(20)
    cond = text(tokens([""] * len(prompts) + prompts)).last_hidden_state
    x = torch.cat([torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(100 + i % seeds))
                   for i in range(len(prompts))]) * sched.init_noise_sigma
    for t in sched.timesteps:
        inp = sched.scale_model_input(torch.cat([x, x]), t)
        if bias is not None:
            inp = inp + bias
        u, c = unet(inp, t, cond).sample.chunk(2)
        x = sched.step(u + cfg * (c - u), t, x).prev_sample
    images = to_uint8(vae.decode(x / scale).sample)
    if sheet is not None:
        from PIL import Image
        grid = images.reshape(9, seeds, 64, 64, 3).transpose(1, 2, 0, 3, 4).reshape(seeds * 64, 9 * 64, 3)
        Image.fromarray(grid).save(sheet)
    got = [analyse(im).position for im in images]
    hits = sum(g == w for g, w in zip(got, wanted))
    # how many distinct places each seed lands in over the nine words: 1 = ignores the word
    per_seed = [len({got[p * seeds + s] for p in range(9)}) for s in range(seeds)]
    return {"position": hits / len(wanted), "places_per_seed": per_seed}


@torch.no_grad()
def text_gain(variant, unet, text, tokens, ns, lat, scenes, bias, n=64):
    """x0 error with the true position word vs a wrong one, at high timesteps (ratio > 1: the word is used)."""
    rng = np.random.default_rng(5)
    idx = rng.integers(0, len(scenes), n)
    right = [prompt_at(scenes[i].position) for i in idx]
    wrong = [prompt_at(str(rng.choice([p for p in POSITION_NAMES if p != scenes[i].position]))) for i in idx]
    x0 = lat[torch.from_numpy(idx)]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(6))
    out = {}
    for t in (999, 900, 700, 500):
        ts = torch.full((n,), t)
        noisy = ns.add_noise(x0, noise, ts)
        inp = noisy + bias if bias is not None else noisy
        a = ns.alphas_cumprod[t]
        errs = []
        for ps in (right, wrong):
            pred = unet(inp, ts, text(tokens(ps)).last_hidden_state).sample
            est = (a.sqrt() * noisy - (1 - a).sqrt() * pred) if variant == "ztsnr" else (noisy - (1 - a).sqrt() * pred) / a.sqrt()
            errs.append(float(((est - x0) ** 2).mean()))
        out[str(t)] = round(errs[1] / errs[0], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=("eps", "ztsnr", "posemb"), required=True)
    ap.add_argument("--high-x0", action="store_true", help="x0-loss weight at least 1 at every timestep")
    ap.add_argument("--fixed-pos", action="store_true", help="add fixed coordinate ramps to the UNet input")
    ap.add_argument("--name", default="")
    ap.add_argument("--text-emb", action="store_true", help="UNet addition_embed_type='text' (pooled prompt added to the time embedding)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pool", type=int, default=3000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from diffusers import AutoencoderKL, DDPMScheduler

    vae = AutoencoderKL.from_pretrained(Path(embedded_model_path()) / "vae", torch_dtype=torch.float32).eval()
    scale = vae.config.scaling_factor
    rng = np.random.default_rng(0)
    scenes = [make_scene(rng, "circle", "red", "large", str(rng.choice(POSITION_NAMES)), "blue") for _ in range(args.pool)]
    lat = encode_means(vae, [render(s) for s in scenes]) * scale
    arch = A.Architecture(vae_channels=(8, 16, 32), vae_groups=1)
    text, unet = A.build_text(arch), A.build_unet(arch)
    if args.text_emb:
        from diffusers import UNet2DConditionModel

        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config({**unet.config, "addition_embed_type": "text",
                                                 "addition_embed_type_num_heads": 4})
    bias = torch.nn.Parameter(torch.zeros(1, 4, 16, 16)) if args.variant == "posemb" else None
    if args.fixed_pos:
        ramp = torch.linspace(-1, 1, 16)
        fixed = torch.zeros(1, 4, 16, 16)
        fixed[0, 0] = ramp[None, :]
        fixed[0, 1] = ramp[:, None]
        bias = torch.nn.Parameter(fixed, requires_grad=False)
    ema_t, ema_u = copy.deepcopy(text).requires_grad_(False), copy.deepcopy(unet).requires_grad_(False)
    ema_b = bias.detach().clone() if bias is not None else None
    learned = bias is not None and bias.requires_grad
    train_p = [p for m in (text, unet) for p in m.parameters()] + ([bias] if learned else [])
    ema_p = [p for m in (ema_t, ema_u) for p in m.parameters()] + ([ema_b] if learned else [])
    groups = param_groups([text, unet], 0.01)
    if learned:
        groups.append({"params": [bias], "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=5e-4)
    ns = DDPMScheduler(**schedule_kwargs(args.variant))
    alphas = ns.alphas_cumprod
    snr = alphas / (1 - alphas)
    v = args.variant == "ztsnr"
    x0_weight = torch.clamp(snr, min=1.0 if args.high_x0 else 0.0, max=5.0)
    weights = x0_weight / (snr + 1 if v else snr)
    tokens, gen = Tokens(), torch.Generator().manual_seed(3)
    crng = np.random.default_rng(2)
    args.out.mkdir(parents=True, exist_ok=True)
    log, t0, running = [], time.perf_counter(), []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, 5e-4, 100)
        idx = crng.integers(0, len(scenes), 32)
        caps = [caption(scenes[i], crng, 0.25) if crng.random() >= 0.1 else "" for i in idx]
        x0 = lat[torch.from_numpy(idx)]
        noise = training_noise(x0.shape, 0.15, gen)
        ts = torch.randint(0, 1000, (32,), generator=gen)
        noisy = ns.add_noise(x0, noise, ts)
        target = ns.get_velocity(x0, noise, ts) if v else noise
        pred = unet(noisy + bias if bias is not None else noisy, ts, text(tokens(caps)).last_hidden_state).sample
        loss = (F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)) * weights[ts]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(train_p, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_p, train_p, 1.0 - decay)
        running.append(loss.item())
        if (step + 1) % args.eval_every == 0:
            r = evaluate(args.variant, ema_u.eval(), ema_t.eval(), vae, tokens, scale, ema_b,
                         sheet=args.out / f"{args.name or args.variant}-{step + 1}.png")
            r["wrong_over_right"] = text_gain(args.variant, ema_u, ema_t, tokens, ns, lat, scenes, ema_b)
            row = {"step": step + 1, "loss": float(np.mean(running)), "s": round(time.perf_counter() - t0), **r}
            running = []
            log.append(row)
            print(args.name or args.variant, json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name or args.variant}.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
