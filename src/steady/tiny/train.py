"""Train the embedded tiny model from a seed, on CPU, and save it as a diffusers folder.

    python -m steady.tiny.train --out build/tiny [--seed 0] [--threads 2]
                                                  (the shipped weights, from nothing: the defaults)
    python -m steady.tiny.train --out /tmp/t --quick        (a one-minute smoke run)
    python -m steady.tiny.train --out build/tiny --vae-from src/steady/tiny/weights
                                                  (steps 2-4 only, on an already trained VAE)
    python -m steady.tiny.train --out build/tiny2 --init-from build/tiny --seed 1 --unet-steps 3000 \
        --unet-lr 2.5e-4          (a continuation: steps 2-4 from a saved model's VAE, UNet and text encoder;
                                   the defaults' curriculum runs too unless --bind-phases "")

Steps (docs/tiny-model.md has the why of each choice):
 1. VAE alone on fresh scenes (L1 + 0.1 MSE + tiny KL; posterior log-variance starts at -8), the
    pixel loss weighted up on the shape (``vae_fg_weight``) and on its outline band (``vae_edge_weight``).
    Reconstructions of held-out-seed scenes are scored with the checker every ``vae_eval_every``.
 2. Latent pool: the posterior means of ``pool`` scenes, kept with their ``Scene`` so each use
    draws a fresh caption; ``scaling_factor`` = 1 / std of the pool.
 3a. (``--bind-phases``; "" turns it off) the position-binding curriculum of ``steady.tiny.binding``:
    the clean-latent error at t >= 950 only, first on scenes where only the place varies, then on
    any colours, then on the training scenes; ``--bind-weight`` keeps that loss during step 3.
 3. UNet + text encoder jointly: DDPM epsilon loss with SD 1.x's betas and offset noise, min-SNR-5 weights,
    (``--latent-edge-weight``) more weight on the latent cells along the shape's outline,
    10 % empty captions (for classifier-free guidance), AdamW with warm-up and cosine decay,
    EMA of the weights. Every ``eval_every`` steps the EMA model samples the fixed evaluation
    prompts (20 Euler steps, CFG 5) and the checker scores them.
 4. Save the EMA weights as float16 safetensors in a StableDiffusionPipeline folder, plus
    ``training.json`` (config, timings, every logged loss and evaluation) and ``loss.png``.
 5. Polish the decoder alone, from the saved folder, with the encoder frozen (so the latents the
    UNet learned do not move): small shapes' edges are what the VAE learns last, so the loss adds
    ``decoder_edge_weight`` on a band along the shape's outline. The new decoder is kept only if
    its reconstructions score better (``steady.tiny.polish``). ``--polish-only`` runs just this step.

Everything is seeded: the same seed, thread count and torch build give the same weights.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steady.tiny import arch as A
from steady.tiny import binding as B
from steady.tiny.common import (
    TrainConfig,
    coverage,
    loss_weights_vae,
    lr_at,
    outline_band,
    reconstruction_accuracy,
    reconstruction_loss,
    to_tensor,
    to_uint8,
)
from steady.tiny.data import dataset
from steady.tiny.evaluate import VARIETY_IMAGES, VARIETY_PROMPT, EvalPrompt, eval_prompts, score
from steady.tiny.polish import polish_decoder
from steady.tiny.scenes import caption


QUICK = dict(vae_steps=30, vae_eval_every=15, pool=256, unet_steps=30, unet_stop=0, eval_every=15,
             eval_per_holdout=1, eval_seen=4, log_every=5, decoder_steps=10,
             bind_phases="position-only:10,colours+full:10", bind_scenes=64, bind_batch=4)  # fmt: skip


@torch.no_grad()
def encode_means(vae: Any, images: list[np.ndarray], batch: int = 500) -> torch.Tensor:
    """The VAE posterior means of uint8 images, ``batch`` at a time (unscaled latents)."""
    return torch.cat([vae.encode(to_tensor(np.stack(images[i : i + batch]))).latent_dist.mean
                      for i in range(0, len(images), batch)])  # fmt: skip


class Log:
    """Training history, written to ``training.json`` at every evaluation (so a killed run
    still leaves its curve) and at the end."""

    def __init__(self, path: Path, config: TrainConfig, arch: A.Architecture):
        self.path = path
        self.data: dict[str, Any] = {
            "config": config.to_dict(), "architecture": arch.to_dict(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "vae_loss": [], "vae_eval": [], "bind_loss": [], "bind_ratio": [], "unet_loss": [], "unet_eval": [],
            "timings_s": {},
        }  # fmt: skip
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.t0, 1)

    def add(self, key: str, row: dict[str, Any], echo: bool = False) -> None:
        row = {"t": self.elapsed(), **row}
        self.data[key].append(row)
        if echo:
            print(key, json.dumps(row), flush=True)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------------
# 1. VAE
def train_vae(c: TrainConfig, arch: A.Architecture, log: Log) -> Any:
    vae = A.build_vae(arch)
    with torch.no_grad():
        vae.quant_conv.bias[4:].fill_(-8.0)  # start with a quiet posterior (docs/tiny-model.md)
    opt = torch.optim.AdamW(vae.parameters(), lr=c.vae_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(c.seed)
    t0, running = time.perf_counter(), []
    for step in range(c.vae_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c.vae_steps, c.vae_lr, 100)
        batch = list(dataset(c.seed, c.vae_batch, start=step * c.vae_batch))
        x = to_tensor(np.stack([s.image for s in batch]))
        w = loss_weights_vae(batch, c.vae_fg_weight, c.vae_edge_weight)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        loss = reconstruction_loss(rec, x, w) + c.vae_kl * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        if (step + 1) % c.log_every == 0:
            log.add("vae_loss", {"step": step + 1, "loss": float(np.mean(running))})
            running = []
        if c.vae_eval_every and ((step + 1) % c.vae_eval_every == 0 or step + 1 == c.vae_steps):
            vae.eval()
            log.add("vae_eval", {"step": step + 1, **reconstruction_accuracy(vae)}, echo=True)
            vae.train()
            log.save()
    log.data["timings_s"]["vae"] = round(time.perf_counter() - t0, 1)
    return vae.eval().requires_grad_(False)


def load_vae(folder: str, log: Log) -> Any:
    """Step 1 skipped: the VAE of an already trained model folder, in float32."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(Path(folder) / "vae", torch_dtype=torch.float32)
    log.data["vae_from"] = str(folder)
    vae.eval()
    log.add("vae_eval", {"step": 0, **reconstruction_accuracy(vae)}, echo=True)
    return vae.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# 2. latent pool
@dataclass
class Pool:
    latents: torch.Tensor  # (N, 4, 16, 16), already multiplied by scaling_factor
    scenes: list[Any]
    scaling_factor: float
    outline: torch.Tensor | None = None  # (N, 1, 16, 16): share of each latent cell on the shape's outline


def encode_pool(c: TrainConfig, vae: Any, log: Log) -> Pool:
    t0 = time.perf_counter()
    samples = list(dataset(c.seed + 1, c.pool, drop_prob=0.0))
    latents = encode_means(vae, [s.image for s in samples])
    # A continuation keeps the latent scale its UNet was trained with (the folder's VAE config).
    scale = float(vae.config.scaling_factor) if c.init_from else float(1.0 / latents.std())
    log.data["timings_s"]["pool"] = round(time.perf_counter() - t0, 1)
    log.data["latents"] = {"n": len(samples), "mean": float(latents.mean()), "std": float(latents.std()),
                           "scaling_factor": scale}  # fmt: skip
    print("pool", json.dumps(log.data["latents"]), flush=True)
    outline = latent_outline(samples) if c.latent_edge_weight else None
    return Pool(latents * scale, [s.scene for s in samples], scale, outline)


def latent_outline(samples: list[Any]) -> torch.Tensor:
    """(N, 1, 16, 16): the share of each latent cell's 4x4 pixels on the shape's outline band."""
    return F.avg_pool2d(outline_band(coverage(samples)), A.IMAGE_SIZE // A.LATENT_SIZE)


# ---------------------------------------------------------------------------------------------
# 3. UNet + text encoder
class Tokens:
    """Caches token ids per caption (the vocabulary of captions is small)."""

    def __init__(self) -> None:
        self.tok = A.load_tokenizer()
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            ids = self.tok(missing, padding="max_length", max_length=77, truncation=True,
                           return_tensors="pt").input_ids  # fmt: skip
            self.cache.update(zip(missing, ids, strict=True))
        return torch.stack([self.cache[t] for t in texts])


def param_groups(models: list[torch.nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    decay, plain = [], []
    for m in models:
        for name, p in m.named_parameters():
            (plain if p.ndim < 2 or "embedding" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def make_eval_scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**A.SCHEDULE, steps_offset=1, timestep_spacing="leading")


@torch.no_grad()
def sample_images(unet: Any, text: Any, vae: Any, tokens: Tokens, prompts: list[str],
                  seeds: list[int], scale: float, steps: int = 20, cfg: float = 5.0) -> np.ndarray:
    """Euler, CFG as one batch of (uncond, cond); the training-time twin of the pipeline."""
    out = []
    for i in range(0, len(prompts), 32):
        ps, ss = prompts[i : i + 32], seeds[i : i + 32]
        sched = make_eval_scheduler()
        sched.set_timesteps(steps)
        cond = text(tokens([""] * len(ps) + ps)).last_hidden_state
        x = torch.cat([torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(s)) for s in ss])
        x = x * sched.init_noise_sigma
        for t in sched.timesteps:
            inp = sched.scale_model_input(torch.cat([x, x]), t)
            e_u, e_c = unet(inp, t, cond).sample.chunk(2)
            x = sched.step(e_u + cfg * (e_c - e_u), t, x).prev_sample
        out.append(to_uint8(vae.decode(x / scale).sample))
    return np.concatenate(out)


def evaluate(unet: Any, text: Any, vae: Any, tokens: Tokens, prompts: list[EvalPrompt],
             scale: float) -> dict[str, Any]:
    images = sample_images(unet, text, vae, tokens, [p.prompt for p in prompts],
                           [p.seed for p in prompts], scale)  # fmt: skip
    variety = sample_images(unet, text, vae, tokens, [VARIETY_PROMPT] * VARIETY_IMAGES,
                            list(range(VARIETY_IMAGES)), scale)  # fmt: skip
    return score(prompts, list(images), list(variety)).to_dict()


def training_noise(shape: tuple[int, ...] | torch.Size, offset: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise plus a per-image, per-channel constant of std ``offset`` ("offset noise").

    Why: SD 1.x's schedule keeps 6.8 % of the signal at t=999, and the mean of a 16x16 noise map
    has std 1/16, so without the offset the starting noise's mean tells the model the background
    colour and it learns to ignore the prompt for it (the first shipped weights did: same seed,
    five background words, five identical backgrounds). With the offset, the noise's mean carries
    about 7x less of the signal (measured: the latents' per-channel means have std 0.89, so the
    SNR of the noisy mean at t=999 falls from 0.93 to 0.14) and the prompt is the only reliable source.
    """
    noise = torch.randn(shape, generator=gen)
    if offset:
        noise = noise + offset * torch.randn((shape[0], shape[1], 1, 1), generator=gen)
    return noise


def loss_weights(snr: torch.Tensor, min_snr: float, high_t_cap: float) -> torch.Tensor:
    """Per-timestep weights of the epsilon loss: min-SNR-gamma (Hang et al. 2023) where SNR > 1,
    and, with ``high_t_cap``, 1/SNR (capped) where SNR < 1, which makes it the x0 loss there.

    Why the second part: the epsilon loss weighs an error in the predicted image by SNR, so at the
    high timesteps, where the prompt alone must decide *where* the shape goes (the noisy latent does
    not show it yet), the image error counts 10-200x less than at mid timesteps, and a model trained
    so places the shape wherever the starting noise suggests (measured on the offset-noise weights:
    one seed, five position words, one position). Truncated-SNR weighting (Salimans & Ho 2022)
    restores the image error's weight there; the prediction stays epsilon, so samplers are unchanged.
    Tried at cap 10 and above, before the position curriculum: position did not move off chance; off by
    default (CHANGELOG.md, 2026-12-04).
    """
    weights = torch.clamp(snr, max=min_snr) / snr
    if high_t_cap:
        weights = weights * torch.clamp(1 / snr, min=1.0, max=high_t_cap)
    return weights


def load_text_unet(folder: str) -> tuple[Any, Any]:
    """A continuation's start: the text encoder and UNet of a saved model folder, in float32."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    text = CLIPTextModel.from_pretrained(Path(folder) / "text_encoder", torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(Path(folder) / "unet", torch_dtype=torch.float32)
    return text.train(), unet.train()


def train_unet(c: TrainConfig, arch: A.Architecture, vae: Any, pool: Pool, log: Log) -> tuple[Any, Any]:
    from diffusers import DDPMScheduler

    torch.manual_seed(c.seed)  # the UNet's start does not depend on whether step 1 ran here
    text, unet = load_text_unet(c.init_from) if c.init_from else (A.build_text(arch), A.build_unet(arch))
    if c.init_from:
        log.data["init_from"] = str(c.init_from)
    train_params = [p for m in (text, unet) for p in m.parameters()]
    opt = torch.optim.AdamW(param_groups([text, unet], c.weight_decay), lr=c.unet_lr)
    alphas = DDPMScheduler(**A.SCHEDULE).alphas_cumprod
    snr = alphas / (1 - alphas)
    weights = loss_weights(snr, c.min_snr, c.high_t_weight)
    noise_sched = DDPMScheduler(**A.SCHEDULE)
    tokens, rng = Tokens(), np.random.default_rng(c.seed + 2)
    gen = torch.Generator().manual_seed(c.seed + 3)
    noise_fn = functools.partial(training_noise, offset=c.offset_noise)
    phases, keep = B.parse_phases(c.bind_phases), B.parse_kinds(c.bind_keep)
    bind = None
    if phases or c.bind_weight:
        kinds = {k for p in phases for k in p.kinds} | (set(keep) if c.bind_weight else set())
        bind = B.BindData.build(kinds, functools.partial(encode_means, vae), pool, c.bind_scenes, c.seed + 4)
        t_bind = time.perf_counter()
        B.run_phases(phases, (text, unet), opt, bind, tokens, noise_sched, noise_fn, c, rng, gen, log)
        log.data["timings_s"]["bind"] = round(time.perf_counter() - t_bind, 1)
    ema_text, ema_unet = copy.deepcopy(text).requires_grad_(False), copy.deepcopy(unet).requires_grad_(False)
    ema_params = [p for m in (ema_text, ema_unet) for p in m.parameters()]
    prompts = eval_prompts(c.eval_per_holdout, c.eval_seen)
    t0, running = time.perf_counter(), []
    last = min(c.unet_stop or c.unet_steps, c.unet_steps)
    for step in range(last):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c.unet_steps, c.unet_lr, c.warmup)
        idx = rng.integers(0, len(pool.scenes), c.unet_batch)
        caps = [caption(pool.scenes[i], rng, c.drop_prob) if rng.random() >= c.empty_caption else ""
                for i in idx]  # fmt: skip
        picked = torch.from_numpy(idx)
        lat = pool.latents[picked]
        noise = training_noise(lat.shape, c.offset_noise, gen)
        ts = torch.randint(0, A.SCHEDULE["num_train_timesteps"], (c.unet_batch,), generator=gen)
        noisy = noise_sched.add_noise(lat, noise, ts)
        pred = unet(noisy, ts, text(tokens(caps)).last_hidden_state).sample
        err = F.mse_loss(pred, noise, reduction="none")
        if pool.outline is not None:  # the latent cells that tell a small cross from a blob weigh more
            w = 1.0 + c.latent_edge_weight * pool.outline[picked]
            per_image = (err * w).mean(dim=(1, 2, 3)) / w.mean(dim=(1, 2, 3))
        else:
            per_image = err.mean(dim=(1, 2, 3))
        loss = (per_image * weights[ts]).mean()
        if c.bind_weight and bind is not None:  # keeps the position binding of step 3a
            _, bcaps, blat = bind.batch(keep, c.bind_batch, rng)
            bnoisy, bnoise, bts = B.high_t(blat, c.bind_t_min, noise_fn, noise_sched, gen)
            hidden = text(tokens(bcaps)).last_hidden_state
            loss = loss + c.bind_weight * B.x0_error(unet, bnoisy, bnoise, bts, hidden, alphas).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(train_params, 1.0)
        opt.step()
        decay = min(c.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, train_params, 1.0 - decay)
        running.append(loss.item())
        if (step + 1) % c.log_every == 0:
            log.add("unet_loss", {"step": step + 1, "loss": float(np.mean(running)),
                                  "lr": opt.param_groups[0]["lr"]})  # fmt: skip
            running = []
        if c.eval_every and ((step + 1) % c.eval_every == 0 or step + 1 == last):
            report = evaluate(ema_unet.eval(), ema_text.eval(), vae, tokens, prompts, pool.scaling_factor)
            log.add("unet_eval", {"step": step + 1, **report}, echo=True)
            if bind is not None:
                ratio = B.position_ratio(ema_unet, ema_text, tokens, bind, c.bind_t_min, noise_fn, noise_sched,
                                         rng, gen)  # fmt: skip
                log.add("bind_ratio", {"step": step + 1, "kinds": "step 3 (EMA)", "ratio": round(ratio, 4)},
                        echo=True)  # fmt: skip
            log.save()
    log.data["timings_s"]["unet"] = round(time.perf_counter() - t0, 1)
    return ema_text, ema_unet


# ---------------------------------------------------------------------------------------------
# 4. save
def save_model(out: Path, vae: Any, text: Any, unet: Any, scale: float) -> None:
    """A StableDiffusionPipeline folder, weights float16 (upcast at load on CPU)."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    from steady.models.shipped import load_component_config

    vae.register_to_config(scaling_factor=scale)
    sched_cfg = load_component_config("sd1", "scheduler")
    pipe = StableDiffusionPipeline(
        vae=vae.half(), text_encoder=text.half(), tokenizer=A.load_tokenizer(), unet=unet.half(),
        scheduler=PNDMScheduler.from_config(sched_cfg), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(out, safe_serialization=True)
    prefix_text_encoder(out / "text_encoder" / "model.safetensors")
    for part in ("vae", "unet", "text_encoder"):  # a model loaded from a folder remembers that folder's path
        config = out / part / "config.json"
        conf = json.loads(config.read_text(encoding="utf-8"))
        if conf.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def prefix_text_encoder(path: Path) -> None:
    """Write CLIP text weights under ``text_model.`` as SD checkpoints (and transformers 4.x)
    have them; transformers 5.x saves them without the prefix and loads either form."""
    from safetensors.torch import load_file, save_file

    sd = load_file(path)
    if all(k.startswith("text_model.") for k in sd):
        return
    fixed = {k if k.startswith("text_model.") else f"text_model.{k}": v.contiguous() for k, v in sd.items()}
    tmp = path.with_suffix(".tmp")
    save_file(fixed, tmp, metadata={"format": "pt"})
    os.replace(tmp, path)


def train(c: TrainConfig, out: Path) -> dict[str, Any]:
    if c.init_from and not c.vae_from:  # a continuation's UNet only fits its own VAE
        c = replace(c, vae_from=c.init_from)
    torch.manual_seed(c.seed)
    if c.threads:
        torch.set_num_threads(c.threads)
    out.mkdir(parents=True, exist_ok=True)
    widths = tuple(int(w) for w in c.vae_channels.split(","))
    unet = tuple(int(w) for w in c.unet_channels.split(","))
    arch = A.Architecture(vae_channels=widths, vae_groups=c.vae_groups, **A.unet_levels(unet))
    log = Log(out / "training.json", c, arch)
    print(f"training tiny model: seed {c.seed}, {torch.get_num_threads()} threads, out {out}", flush=True)
    # The VAE ships in float16; the pool is encoded with exactly those weights, so a full run and
    # a --vae-from run on its saved folder train the UNet on the same latents.
    vae = load_vae(c.vae_from, log) if c.vae_from else train_vae(c, arch, log).half().float()
    pool = encode_pool(c, vae, log)
    text, unet = train_unet(c, arch, vae, pool, log)
    save_model(out, vae, text, unet, pool.scaling_factor)
    log.data["timings_s"]["total"] = log.elapsed()
    log.save()
    if c.decoder_steps:
        return polish_decoder(c, out)
    from steady.tiny.plot import plot_training

    plot_training(log.data, out / "loss.png")
    return log.data


def add_config_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """One optional --flag per field of the dataclass `config` (default None: keep the config's)."""
    for f in fields(config):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None)


def with_flags(config: Any, args: argparse.Namespace) -> Any:
    """`config` with every field given on the command line replaced."""
    given = {f.name: getattr(args, f.name) for f in fields(config) if getattr(args, f.name) is not None}
    return replace(config, **given)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m steady.tiny.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the diffusers model and the log")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (minutes), not a usable model")
    p.add_argument("--polish-only", action="store_true", help="only step 5, on the model already in --out")
    add_config_flags(p, TrainConfig)
    args = p.parse_args(argv)
    c = with_flags(replace(TrainConfig(), **QUICK) if args.quick else TrainConfig(), args)
    if args.polish_only:
        data = polish_decoder(c, args.out)
    else:
        data = train(c, args.out)
    final = data["unet_eval"][-1] if data["unet_eval"] else {}
    print("done in", data["timings_s"], "final accuracy", final.get("accuracy"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
