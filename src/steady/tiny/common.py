"""What the training steps share: the configuration, the learning-rate schedule, image <-> tensor
conversion and the VAE's reconstruction loss and score.

``steady.tiny.train`` (steps 1-4) and ``steady.tiny.polish`` (step 5) both import this module;
neither imports the other's internals, so the two have no import cycle.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steady.tiny.checker import analyse
from steady.tiny.data import dataset


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    threads: int = 2
    vae_channels: str = "8,16,32"  # block widths
    vae_groups: int = 1  # GroupNorm groups: few, so flat colours survive normalisation
    vae_steps: int = 4500
    vae_batch: int = 32
    vae_lr: float = 3e-3
    vae_kl: float = 1e-6
    vae_fg_weight: float = 8.0  # extra loss weight on the shape's pixels (small shapes are ~2 %)
    vae_edge_weight: float = 16.0  # extra loss weight on a 2-pixel band either side of the shape's outline
    vae_eval_every: int = 500
    unet_channels: str = "48,96"  # block widths; one resolution level per entry (16x16, 8x8, 4x4)
    vae_from: str = ""  # a model folder whose VAE is used as is (skips step 1)
    init_from: str = ""  # a model folder whose UNet and text encoder step 3 starts from (a continuation)
    pool: int = 24_000
    unet_steps: int = 7000  # the learning-rate schedule's length
    unet_stop: int = 0  # stop after this many steps (0: all)
    unet_batch: int = 32
    unet_lr: float = 5e-4
    latent_edge_weight: float = 8.0  # 3. extra epsilon-loss weight on the latent cells of the shape's outline
    warmup: int = 200
    weight_decay: float = 0.01
    ema: float = 0.999
    empty_caption: float = 0.1
    drop_prob: float = 0.25
    min_snr: float = 5.0
    high_t_weight: float = 0.0  # cap of the 1/SNR loss weight at SNR < 1 (x0 loss there); 0: off
    offset_noise: float = 0.15  # std of a per-channel constant added to the training noise
    eval_every: int = 1000
    eval_per_holdout: int = 6
    eval_seen: int = 24
    log_every: int = 25
    bind_phases: str = "position-only:800,position-only+colours:400,colours+full:400"  # 3a. curriculum ("": off)
    bind_lr: float = 5e-4
    bind_t_min: int = 950  # the binding loss's timesteps: [bind_t_min, 999]
    bind_weight: float = 0.05  # weight of the binding loss added to step 3's loss (0: off)
    bind_keep: str = "full"  # scene kinds of that added loss
    bind_batch: int = 16
    bind_scenes: int = 2000  # scenes per generated kind (position-only, colours)
    decoder_steps: int = 0  # 5. decoder-only polish, encoder frozen (0: skip)
    decoder_lr: float = 1e-3
    decoder_edge_weight: float = 16.0  # step 5's outline weight (what tells a small cross from a blob)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 64, 64, 3) -> float (N, 3, 64, 64) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def reconstruction_accuracy(vae: Any, n: int = 300) -> dict[str, float]:
    """Checker accuracy per attribute on reconstructions of ``n`` unseen scenes."""
    test = list(dataset(777, n, drop_prob=0.0, holdout=False))
    with torch.no_grad():
        rec = vae.decode(vae.encode(to_tensor(np.stack([s.image for s in test]))).latent_dist.mode()).sample
    out = to_uint8(rec)
    hits: dict[str, list[bool]] = {}
    for s, img in zip(test, out, strict=True):
        got = analyse(img).attributes()
        for a, v in s.scene.attributes().items():
            hits.setdefault(a, []).append(got[a] == v)
        if s.scene.size == "small":  # where shapes are lost first: a small cross decodes as a blob
            hits.setdefault("shape_small", []).append(got["shape"] == s.scene.shape)
    acc = {a: float(np.mean(v)) for a, v in hits.items()}
    acc["mae"] = float(np.abs(out.astype(np.float32) - np.stack([s.image for s in test])).mean())
    return acc


def shape_mask(image: np.ndarray, scene: Any) -> np.ndarray:
    """The shape's anti-aliased coverage (64, 64) in [0, 1], read back from the render: the
    projection of each pixel onto the background -> shape colour segment."""
    bg = np.asarray(scene.background_rgb, np.float32)
    d = np.asarray(scene.rgb, np.float32) - bg
    t = ((image.astype(np.float32) - bg) @ d) / max(float(d @ d), 1.0)
    return np.clip(t, 0.0, 1.0)


def outline_band(coverage: torch.Tensor) -> torch.Tensor:
    """Dilation minus erosion of the shape's coverage (B, 1, H, W), 5x5: a band ~2 px either side
    of the outline, where a cross's notches and a square's corners are."""
    return F.max_pool2d(coverage, 5, 1, 2) + F.max_pool2d(-coverage, 5, 1, 2)


def coverage(samples: list[Any]) -> torch.Tensor:
    """(N, 1, 64, 64): each sample's ``shape_mask``."""
    return torch.from_numpy(np.stack([shape_mask(s.image, s.scene) for s in samples]))[:, None]


def loss_weights_vae(batch: list[Any], fg: float, edge: float) -> torch.Tensor:
    """Per-pixel reconstruction weights (B, 1, 64, 64): 1, plus ``fg`` on the shape's coverage, plus
    ``edge`` on its outline band; an unweighted loss barely sees the pixels that tell shapes apart."""
    m = coverage(batch)
    w = 1.0 + fg * m
    if edge:
        w = w + edge * outline_band(m)
    return w


def reconstruction_loss(rec: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Steps 1 and 5: L1 + 0.1 MSE, weighted per pixel by ``w`` and normalised by its mean."""
    err = (rec - x).abs() + 0.1 * (rec - x) ** 2
    return (w * err).mean() / w.mean()
