"""The LoRA that teaches the embedded model the star, and what the other trainers share
(``steady.tiny.lcm``, ``steady.tiny.embedding``). The command line is ``steady.tiny.teach``.

``lora``: a LoRA (peft, on the UNet's attention, projections and 3x3 convolutions, and the text
encoder's attention and MLP) that teaches the word "star" and the shape (``scenes.NEW_SHAPES``). Steps:
 1. Load the embedded model (``src/steady/tiny/weights``) in float32; its weights stay frozen.
 2. Latent pool: the VAE posterior means of large-star scenes (``new_scenes``: the VAE turns small
    stars into blobs) and of the ordinary data set, each kept with its scene so every use draws a
    fresh caption.
 3. Train the LoRA layers with the base model's own loss (DDPM epsilon, SD 1.x betas, min-SNR-5,
    offset noise, 10 % empty captions): a batch is three quarters stars and a quarter ordinary scenes, so
    what the model already drew (colours, places, backgrounds) is kept while the star is learnt.
    ``--init FILE`` starts the layers from a saved file (the shipped one is 1,000 steps, then 400,
    then 1,000 with step 3b).
 3b. A graded weight (``--partial-share``): A1111 users turn a LoRA down with ``<lora:NAME:0.5>``
    and expect "some of it". A LoRA trained only at weight 1 flips late and sharply (none of the new
    shape at 0.5). So a share of the steps runs the layers at ``partial_weight``, where some of
    the new-shape captions (``partial_new``) come with their star and the rest with an ordinary
    large shape of the data set (what the model draws for the word without the LoRA): the
    diffusion model learns that mixture at that weight, so sampling draws the new shape for some
    of the seeds.
 4. Save the layers in the kohya layout (``lora_unet_*`` / ``lora_te_*`` with ``.lora_down`` /
    ``.lora_up`` / ``.alpha``), float16, with kohya's metadata: what A1111 and model sites use,
    loaded by steady through the same diffusers loader as a user's file.
 5. Sample the extension's 32 evaluation prompts with and without it (20 Euler steps, CFG 5)
    and score them with the checker: a first reading; the figures are ``steady eval-tiny --set``.

Measured through ``steady generate``: ``steady eval-tiny --set star-large --append " <lora:tiny-star:1>"``.
The shipped files are in ``src/steady/tiny/loras``; docs/tiny-model.md says how they were made.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steady.tiny import arch as A
from steady.tiny.data import DEFAULT_DROP_PROB, dataset, extension_sample, extension_scenes
from steady.tiny.evaluate import extension_prompts, score
from steady.tiny.scenes import caption

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1", "conv2"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
KOHYA_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te_"}


@dataclass(frozen=True)
class TeachConfig:
    seed: int = 0
    threads: int = 2
    kind: str = "star-large"  # what the new scenes show: an extension set (evaluate.EXTENSION_SETS)
    rank: int = 16
    alpha: float = 16.0
    text: bool = True  # LoRA layers on the text encoder too
    steps: int = 1000
    batch: int = 16
    new_share: float = 0.75  # share of each batch with the new thing; the rest are ordinary scenes
    lr: float = 3e-3
    warmup: int = 20
    pool: int = 1000  # scenes of each kind encoded once
    outline_weight: float = 0.0  # extra loss weight on the latent cells along the shape's outline (as step 3)
    empty_caption: float = 0.1
    min_snr: float = 5.0
    offset_noise: float = 0.15
    ema: float = 0.0  # EMA of the LoRA weights, saved instead of the last ones (0: off)
    log_every: int = 25
    save_every: int = 0  # also write the file every this many steps (0: only at the end)
    eval_images: int = 32
    init: str = ""  # a kohya LoRA file of the same rank whose layers start the matching ones (a continuation)
    partial_share: float = 0.0  # share of steps run at LoRA weight ``partial_weight`` (step 3b)
    partial_weight: float = 0.5
    partial_new: float = 0.5  # at those steps, the share of the new scenes kept; the rest show an old shape

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = {"steps": 4, "batch": 4, "pool": 16, "log_every": 2, "eval_images": 2, "warmup": 2}


class Ema:
    """An exponential moving average of some parameters, swapped in for saving and sampling."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.params, self.decay = params, decay
        self.shadow = [p.detach().clone() for p in params]

    def update(self, step: int) -> None:
        if self.decay:
            with torch.no_grad():
                torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params],
                                     1.0 - min(self.decay, (1 + step) / (10 + step)))  # fmt: skip

    def swap(self) -> None:
        """Exchange the live weights and the average (twice: back as they were)."""
        if self.decay:
            with torch.no_grad():
                for p, s in zip(self.params, self.shadow, strict=True):
                    tmp = p.detach().clone()
                    p.copy_(s)
                    s.copy_(tmp)


# ---------------------------------------------------------------------------------------------
# what the trainers share
@dataclass
class Base:
    """The embedded model's parts, float32 on the CPU, frozen."""

    vae: Any
    text: Any
    unet: Any
    tokenizer: Any
    scale: float


def load_base(folder: Path | None = None) -> Base:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from steady.models.default import embedded_model_path

    folder = folder or embedded_model_path()
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval().requires_grad_(False)
    text = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32).requires_grad_(False)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).requires_grad_(False)
    return Base(vae, text, unet, A.load_tokenizer(), float(vae.config.scaling_factor))


@dataclass
class LatentPool:
    latents: torch.Tensor  # (N, 4, 16, 16), scaled
    scenes: list[Any]
    outline: torch.Tensor | None = None  # (N, 1, 16, 16): share of each latent cell on the shape's outline


def encode_pool(base: Base, samples: list[Any], outline: bool = False) -> LatentPool:
    from steady.tiny.train import encode_means, latent_outline

    latents = encode_means(base.vae, [s.image for s in samples]) * base.scale
    return LatentPool(latents, [s.scene for s in samples], latent_outline(samples) if outline else None)


def token_ids(tokenizer: Any, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def eps_loss(unet: Any, hidden: torch.Tensor, latents: torch.Tensor, c: Any, gen: torch.Generator,
             weight: torch.Tensor | None = None) -> torch.Tensor:
    """The base model's training loss (steady.tiny.train step 3) on a batch of clean latents, with
    ``weight`` (B, 1, 16, 16) per latent cell when given (the outline weighting)."""
    from diffusers import DDPMScheduler

    from steady.tiny.train import loss_weights, training_noise

    sched = DDPMScheduler(**A.SCHEDULE)
    alphas = sched.alphas_cumprod
    weights = loss_weights(alphas / (1 - alphas), c.min_snr, 0.0)
    noise = training_noise(latents.shape, c.offset_noise, gen)
    ts = torch.randint(0, A.SCHEDULE["num_train_timesteps"], (latents.shape[0],), generator=gen)
    pred = unet(sched.add_noise(latents, noise, ts), ts, hidden).sample
    err = F.mse_loss(pred, noise, reduction="none")
    if weight is None:
        per_image = err.mean(dim=(1, 2, 3))
    else:
        per_image = (err * weight).mean(dim=(1, 2, 3)) / weight.mean(dim=(1, 2, 3))
    return (per_image * weights[ts]).mean()


def batch_from(pools: list[tuple[LatentPool, int]], rng: np.random.Generator, c: Any,
               outline_weight: float = 0.0) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    """``n`` latents from each pool, each with a fresh caption (or "" for guidance), and their loss
    weights (1 + ``outline_weight`` on the shape's outline) when the pools have outlines."""
    lat, caps, weights = [], [], []
    for pool, n in pools:
        idx = torch.from_numpy(rng.integers(0, len(pool.scenes), n))
        lat.append(pool.latents[idx])
        caps += [caption(pool.scenes[i], rng, DEFAULT_DROP_PROB) if rng.random() >= c.empty_caption else ""
                 for i in idx.tolist()]  # fmt: skip
        if outline_weight and pool.outline is not None:
            weights.append(1.0 + outline_weight * pool.outline[idx])
    return torch.cat(lat), caps, (torch.cat(weights) if weights else None)


def lr_now(step: int, c: Any) -> float:
    from steady.tiny.common import lr_at

    return lr_at(step, c.steps, c.lr, c.warmup)


def save_atomic(tensors: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, out)


# ---------------------------------------------------------------------------------------------
# the LoRA
def add_lora(base: Base, c: TeachConfig) -> list[torch.nn.Parameter]:
    """peft LoRA layers (zero-initialised up-projections: the model is unchanged at step 0)."""
    from peft import LoraConfig, inject_adapter_in_model

    parts = [(base.unet, UNET_TARGETS)] + ([(base.text, TEXT_TARGETS)] if c.text else [])
    for module, targets in parts:
        inject_adapter_in_model(LoraConfig(r=c.rank, lora_alpha=c.alpha, target_modules=targets), module)
    return [p for module, _ in parts for n, p in module.named_parameters() if "lora_" in n]


def kohya_state(base: Base, c: TeachConfig) -> dict[str, torch.Tensor]:
    """The LoRA layers in the kohya layout, float16 (alpha as a scalar per module)."""
    from peft.utils import get_peft_model_state_dict

    out: dict[str, torch.Tensor] = {}
    parts = {"unet": base.unet, **({"text_encoder": base.text} if c.text else {})}
    for part, module in parts.items():
        for key, value in get_peft_model_state_dict(module).items():
            name, kind = key.rsplit(".lora_", 1)
            if part == "text_encoder" and not name.startswith("text_model."):
                name = "text_model." + name  # kohya's names (transformers 5 flattened CLIPTextModel)
            prefix = KOHYA_PREFIX[part] + name.replace(".", "_")
            out[prefix + (".lora_down.weight" if kind.startswith("A") else ".lora_up.weight")] = value.half()
            out[prefix + ".alpha"] = torch.tensor(float(c.alpha), dtype=torch.float16)
    return out


def start_from(base: Base, path: Path) -> int:
    """Copy a kohya LoRA file's down/up weights (as ``kohya_state`` names them) into the matching
    peft layers of the UNet and text encoder (a file of a lower rank into the first ranks, the
    rest adding nothing until trained); how many layers matched. The LoRA and LCM trainers' ``--init``."""
    from safetensors.torch import load_file

    saved, n = load_file(str(path)), 0
    with torch.no_grad():
        for part, module in (("unet", base.unet), ("text_encoder", base.text)):
            for name, layer in module.named_modules():
                if part == "text_encoder" and not name.startswith("text_model."):
                    name = "text_model." + name
                key = KOHYA_PREFIX[part] + name.replace(".", "_")
                if hasattr(layer, "lora_A") and key + ".lora_down.weight" in saved:
                    down, up = saved[key + ".lora_down.weight"].float(), saved[key + ".lora_up.weight"].float()
                    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
                    b.zero_()  # a file of a lower rank fills the first ranks; the rest start as peft starts them
                    a[: down.shape[0]].copy_(down)
                    b[:, : up.shape[1]].copy_(up)
                    n += 1
    return n


def kohya_metadata(name: str, c: Any, seconds: float, extra: dict[str, Any]) -> dict[str, str]:
    """What kohya's sd-scripts records, as far as it applies, plus steady's own training record."""
    return {"ss_output_name": name, "ss_network_module": "networks.lora", "ss_network_dim": str(c.rank),
            "ss_network_alpha": str(c.alpha), "ss_base_model_version": "sd_v1", "ss_sd_model_name": "steady-tiny",
            "ss_steps": str(c.steps), "ss_training_seconds": f"{seconds:.0f}",
            "steady_training": json.dumps({"config": c.to_dict(), **extra})}  # fmt: skip


def new_scenes(kind: str, seed: int, n: int) -> list[Any]:
    """``n`` scenes of an extension set: ``star``, ``lime`` (data.extension_scenes), or ``star-large``,
    the large stars among ``extension_scenes("star", ...)`` (the VAE keeps 97 % of those a star
    through a round trip and 0 % of the small ones, so small ones would teach a blob)."""
    if kind != "star-large":
        return list(extension_scenes(kind, seed, n, drop_prob=0.0))
    out: list[Any] = []
    index = 0
    while len(out) < n:
        s = extension_sample("star", seed, index, drop_prob=0.0)
        index += 1
        if s.scene.size == "large":
            out.append(s)
    return out


def set_weight(base: Base, weight: float) -> None:
    """Run every peft LoRA layer at ``weight`` times its alpha/rank scale (as ``<lora:NAME:weight>``)."""
    for module in (base.unet, base.text):
        for layer in module.modules():
            if hasattr(layer, "set_scale") and hasattr(layer, "lora_A"):
                layer.set_scale("default", weight)


def as_new_word(pool: LatentPool, kind: str) -> LatentPool:
    """The large scenes of an ordinary pool, their shape named as the new one (for step 3b)."""
    from dataclasses import replace as scene_with

    if not kind.startswith("star"):
        raise ValueError(f"kind={kind!r}: the graded weight names ordinary shapes as the star; it needs a star kind")
    keep = [i for i, s in enumerate(pool.scenes) if s.size == "large"]
    scenes = [scene_with(pool.scenes[i], shape="star") for i in keep]
    outline = pool.outline[keep] if pool.outline is not None else None
    return LatentPool(pool.latents[keep], scenes, outline)


def train_lora(c: TeachConfig, out: Path, name: str) -> dict[str, Any]:
    torch.manual_seed(c.seed)
    if c.threads:
        torch.set_num_threads(c.threads)
    t0 = time.perf_counter()
    base = load_base()
    new = encode_pool(base, new_scenes(c.kind, c.seed, c.pool), bool(c.outline_weight))
    old = encode_pool(base, list(dataset(c.seed + 100, c.pool, drop_prob=0.0)), bool(c.outline_weight))
    params = add_lora(base, c)
    if c.init:
        print(f"lora: {start_from(base, Path(c.init))} layers start from {c.init}", flush=True)
    opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=0.0)
    ema = Ema(params, c.ema)
    rng, gen = np.random.default_rng(c.seed + 1), torch.Generator().manual_seed(c.seed + 2)
    n_new = max(1, round(c.batch * c.new_share))
    n_kept = round(n_new * c.partial_new)
    decoys = as_new_word(old, c.kind) if c.partial_share > 0 else None
    log: list[dict[str, float]] = []
    running: list[float] = []
    base.unet.train()
    base.text.train()
    for step in range(c.steps):
        for g in opt.param_groups:
            g["lr"] = lr_now(step, c)
        partial = c.partial_share > 0 and rng.random() < c.partial_share
        set_weight(base, c.partial_weight if partial else 1.0)
        pools = [(new, n_kept), (decoys, n_new - n_kept)] if partial and decoys is not None else [(new, n_new)]
        latents, caps, weight = batch_from([*pools, (old, c.batch - n_new)], rng, c, c.outline_weight)
        hidden = base.text(token_ids(base.tokenizer, caps)).last_hidden_state
        loss = eps_loss(base.unet, hidden, latents, c, gen, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        running.append(loss.item())
        if (step + 1) % c.log_every == 0:
            log.append({"step": step + 1, "loss": float(np.mean(running)), "t": round(time.perf_counter() - t0, 1)})
            print("lora", json.dumps(log[-1]), flush=True)
            running = []
        if c.save_every and (step + 1) % c.save_every == 0 and step + 1 < c.steps:
            seconds = time.perf_counter() - t0
            ema.swap()
            save_atomic(kohya_state(base, c), out, kohya_metadata(name, replace(c, steps=step + 1), seconds, {"loss": log}))
            ema.swap()
    ema.swap()  # from here on the model carries the average
    set_weight(base, 1.0)
    base.unet.eval()
    base.text.eval()
    seconds = time.perf_counter() - t0
    report = first_reading(base, c.kind, c.eval_images)
    save_atomic(kohya_state(base, c), out, kohya_metadata(name, c, seconds, {"loss": log, "reading": report}))
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KB) after {seconds:.0f} s; with it: {report}", flush=True)
    return {"seconds": seconds, "loss": log, "reading": report}


@torch.no_grad()
def first_reading(base: Base, kind: str, n: int) -> dict[str, float]:
    """The checker's per-attribute accuracy on ``n`` of the extension's evaluation prompts, sampled
    as training samples them (20 Euler steps, CFG 5): a first look, not the measured figure."""
    from steady.tiny.train import sample_images

    class _Tokens:
        def __call__(self, texts: list[str]) -> torch.Tensor:
            return token_ids(base.tokenizer, texts)

    prompts = extension_prompts(kind, n)
    images = sample_images(base.unet, base.text, base.vae, _Tokens(), [p.prompt for p in prompts],
                           [p.seed for p in prompts], base.scale)  # fmt: skip
    return {k: round(v, 3) for k, v in score(prompts, list(images)).accuracy.items()}


