"""Training-design trial for the embedded tiny model: measures, on this CPU, the time of one
training step of candidate AutoencoderKL / UNet2DConditionModel / CLIPTextModel sizes, their
parameter counts and fp16 sizes, and the 20-step CFG sampling latency. Trains nothing to keep.

    python tools/tiny_trial.py --threads 1 [--only vae|unet|sample]          (~2 CPU min)
    python tools/tiny_trial.py --only vae-quality --vae-names v8-16-32 --vae-train-s 90 \
        [--quiet-posterior]     (trains a VAE for 90 CPU s, scores reconstructions with the checker)

Numbers go to stdout; docs/tiny-model.md records the ones we chose from. Weights are never saved.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from steady.tiny.checker import analyse
from steady.tiny.data import dataset

TOKENIZER = Path(__file__).resolve().parents[1] / "src/steady/models/configs/tokenizer"


@dataclass(frozen=True)
class VaeConfig:
    name: str
    channels: tuple[int, ...]  # len 3 -> 64x64 to 16x16 latents
    groups: int = 16
    mid_attention: bool = False


@dataclass(frozen=True)
class UnetConfig:
    name: str
    channels: tuple[int, ...]
    down: tuple[str, ...]
    up: tuple[str, ...]
    heads: int = 4
    layers: int = 1
    groups: int = 16


@dataclass(frozen=True)
class TextConfig:
    name: str
    hidden: int
    layers: int
    heads: int = 4


def build_vae(c: VaeConfig) -> AutoencoderKL:
    n = len(c.channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=c.channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=1, norm_num_groups=c.groups, sample_size=64,
        mid_block_add_attention=c.mid_attention,
    )  # fmt: skip


def build_unet(c: UnetConfig, cross_dim: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=c.channels,
        down_block_types=c.down, up_block_types=c.up, layers_per_block=c.layers,
        cross_attention_dim=cross_dim, attention_head_dim=c.heads, norm_num_groups=c.groups,
    )  # fmt: skip


def build_text(c: TextConfig) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=c.hidden, intermediate_size=4 * c.hidden,
        num_hidden_layers=c.layers, num_attention_heads=c.heads, max_position_embeddings=77,
        projection_dim=c.hidden, pad_token_id=49407,
    ))  # fmt: skip


def params(m: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable_only)


def batch(seed: int, start: int, n: int, tok: CLIPTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    samples = list(dataset(seed, n, start=start))
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    images = images.float() / 127.5 - 1.0
    captions = [s.caption for s in samples]
    ids = tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    return images, ids.input_ids


def timed(step: Callable[[], object], warmup: int = 1, repeats: int = 3) -> float:
    """CPU seconds of this process per call (median of ``repeats`` after ``warmup``).

    CPU time, not wall time: the machine is shared, and with other jobs running the wall
    clock measured the queue, not our work. With N threads divide by ~N for wall time.
    """
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        step()
        times.append(time.process_time() - t)
    return float(np.median(times))


def trial_vae(c: VaeConfig, bs: int, tok: CLIPTokenizer) -> float:
    vae = build_vae(c)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    images, _ = batch(0, 0, bs, tok)

    def step() -> None:
        post = vae.encode(images).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = torch.nn.functional.mse_loss(rec, images) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    s = timed(step)
    print(f"vae  {c.name:8s} ch={c.channels} params={params(vae)/1e6:.2f}M "
          f"fp16={params(vae)*2/2**20:.1f}MB bs={bs} step={s*1000:.0f}ms ({1/s:.2f} steps/s)")  # fmt: skip
    return s


def trial_unet(u: UnetConfig, t: TextConfig, bs: int, freeze_embed: bool, tok: CLIPTokenizer) -> float:
    text, unet = build_text(t), build_unet(u, t.hidden)
    text.get_input_embeddings().weight.requires_grad_(not freeze_embed)
    trainable = [p for m in (text, unet) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    sched = DDPMScheduler(num_train_timesteps=1000)
    _, ids = batch(0, 0, bs, tok)
    latents = torch.randn(bs, 4, 16, 16)

    def step() -> None:
        noise = torch.randn_like(latents)
        ts = torch.randint(0, 1000, (bs,))
        noisy = sched.add_noise(latents, noise, ts)
        cond = text(ids).last_hidden_state
        loss = torch.nn.functional.mse_loss(unet(noisy, ts, cond).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    s = timed(step)
    total = params(unet) + params(text)
    print(f"unet {u.name:8s}+text {t.name:5s} unet={params(unet)/1e6:.2f}M text={params(text)/1e6:.2f}M "
          f"(trainable {params(text, True)/1e6:.2f}M) fp16={total*2/2**20:.1f}MB bs={bs} "
          f"frozen_embed={freeze_embed} step={s*1000:.0f}ms ({1/s:.2f} steps/s)")  # fmt: skip
    return s


def trial_vae_quality(
    c: VaeConfig, bs: int, cpu_seconds: float, tok: CLIPTokenizer, quiet_posterior: bool
) -> None:
    """Train a VAE for ``cpu_seconds`` on fresh samples, then score 200 reconstructions."""
    vae = build_vae(c)
    if quiet_posterior:
        # start with posterior std ~0.02 instead of ~1: the decoder sees the mean, not noise
        with torch.no_grad():
            vae.quant_conv.bias[4:].fill_(-8.0)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    start, step = time.process_time(), 0
    while time.process_time() - start < cpu_seconds:
        images, _ = batch(0, step * bs, bs, tok)
        post = vae.encode(images).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = torch.nn.functional.l1_loss(rec, images) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    hits, errs = 0.0, []
    test = list(dataset(777, 200, holdout=False))
    with torch.no_grad():
        x = torch.from_numpy(np.stack([s.image for s in test])).permute(0, 3, 1, 2).float() / 127.5 - 1
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    out = ((rec + 1) * 127.5).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)
    for s, img in zip(test, out, strict=True):
        got = analyse(img).attributes()
        hits += np.mean([got[a] == v for a, v in s.scene.attributes().items()])
        errs.append(np.abs(img.astype(float) - s.image).mean())
    print(f"vae  {c.name:8s} quiet_posterior={quiet_posterior} {step} steps bs={bs} "
          f"in {cpu_seconds:.0f} CPU s: recon mean |err| "
          f"{np.mean(errs):.1f}/255, checker attribute accuracy on recon {hits / len(test):.3f}")  # fmt: skip


@torch.no_grad()
def trial_sample(u: UnetConfig, t: TextConfig, v: VaeConfig, tok: CLIPTokenizer) -> float:
    """Seconds for one 64x64 image: encode prompt + 20 Euler steps with CFG (batch 2) + decode."""
    text, unet, vae = build_text(t).eval(), build_unet(u, t.hidden).eval(), build_vae(v).eval()
    sched = EulerDiscreteScheduler(num_train_timesteps=1000)

    def generate() -> None:
        ids = tok(["", "a small red circle at the top left"], padding="max_length", max_length=77,
                  return_tensors="pt").input_ids  # fmt: skip
        cond = text(ids).last_hidden_state
        sched.set_timesteps(20)
        x = torch.randn(1, 4, 16, 16) * sched.init_noise_sigma
        for ts in sched.timesteps:
            inp = sched.scale_model_input(torch.cat([x, x]), ts)
            e_u, e_c = unet(inp, ts, cond).sample.chunk(2)
            x = sched.step(e_u + 5.0 * (e_c - e_u), ts, x).prev_sample
        vae.decode(x / 0.18215)

    s = timed(generate, warmup=1, repeats=3)
    print(f"sample unet {u.name} text {t.name} vae {v.name}: {s*1000:.0f} ms/image (20 steps, CFG)")
    return s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["vae", "unet", "sample", "vae-quality"], default=None)
    parser.add_argument("--vae-train-s", type=float, default=90.0, help="CPU s per VAE quality trial")
    parser.add_argument("--quiet-posterior", action="store_true", help="init logvar bias to -8")
    parser.add_argument("--vae-names", default="v16-32,v8-16-32", help="VAEs for --only vae-quality")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} device=cpu dtype=float32")
    tok = CLIPTokenizer.from_pretrained(TOKENIZER)
    vaes = [
        VaeConfig("v32-64", (32, 64, 64)),
        VaeConfig("v16-32", (16, 32, 64), groups=8),
        VaeConfig("v8-16-32", (8, 16, 32), groups=4),
    ]
    c, d, cu, uu = "CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"
    unets = [
        # attention at 16x16 roughly doubles latency, so the candidates attend at 8x8 only
        UnetConfig("u32-64/a8", (32, 64), (d, c), (cu, uu), groups=8),
        UnetConfig("u48-96/a8", (48, 96), (d, c), (cu, uu), groups=8),
        UnetConfig("u64-128/a8", (64, 128), (d, c), (cu, uu)),
        UnetConfig("u64-128/a16,8", (64, 128), (c, c), (cu, cu)),
    ]
    texts = [TextConfig("t64x2", 64, 2), TextConfig("t128x3", 128, 3)]
    if args.only in (None, "vae"):
        for v in vaes:
            trial_vae(v, 32, tok)
    if args.only in (None, "unet"):
        for u in unets[:3]:
            trial_unet(u, texts[0], 32, True, tok)
        trial_unet(unets[2], texts[1], 32, False, tok)
    if args.only == "vae-quality":
        for v in vaes:
            if v.name in args.vae_names.split(","):
                trial_vae_quality(v, 16, args.vae_train_s, tok, args.quiet_posterior)
    if args.only in (None, "sample"):
        for u in unets:
            trial_sample(u, texts[0], vaes[1], tok)


if __name__ == "__main__":
    main()
