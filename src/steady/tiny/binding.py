"""Step 3a of the tiny model's training: a curriculum that binds the position words to places.

Why (docs/tiny-model.md; the experiments in docs/research/README.md): where the shape goes is
decided at the highest timesteps, where the noisy latent holds almost nothing and only the prompt
can say. The plain training signal there is small, and binding a word to a place needs the
cross-attention's queries and keys to align, which starts from a plateau: measured, the x0 error
with a wrong position word stays exactly equal to the right word's for 750+ steps on the training
scenes. On scenes where only the place varies (one large red circle on blue) the same regression
escapes the plateau in a few hundred steps, and through scenes with any colours (the binding must
now carry the colour) it reaches the training scenes; jumping straight from the first to the last
loses it again.

So step 3 can start with phases of this *binding loss*: the error of the predicted clean latent
(epsilon prediction unchanged, the loss weighted by 1/SNR) at t >= ``t_min`` only, on batches drawn
from scene kinds given per phase, e.g. ``position-only:600,position-only+colours:400,colours+full:400``.
The same loss, with a weight, can ride along the usual training afterwards so the binding stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from steady.tiny.data import make_scene, render
from steady.tiny.scenes import COLOUR_NAMES, POSITION_NAMES, Scene, caption, is_held_out, position_phrase

KINDS = ("position-only", "colours", "full")


@dataclass(frozen=True)
class Phase:
    kinds: tuple[str, ...]  # each batch is split evenly between these scene kinds
    steps: int


def parse_phases(spec: str, name: str = "bind_phases") -> list[Phase]:
    """``KIND[+KIND]:STEPS,...`` -> phases; a clear error naming the option otherwise."""
    phases = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kinds, sep, steps = part.partition(":")
        parsed = _kinds(kinds, name, spec)
        if not sep or not steps.isdigit() or int(steps) < 1:
            raise ValueError(f"{name}={spec!r}: each phase must read KIND[+KIND]:STEPS with STEPS >= 1, got {part!r}")
        phases.append(Phase(parsed, int(steps)))
    return phases


def parse_kinds(spec: str, name: str = "bind_keep") -> tuple[str, ...]:
    """``KIND[+KIND]`` -> kinds; a clear error naming the option otherwise."""
    return _kinds(spec, name, spec)


def _kinds(text: str, name: str, spec: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split("+"))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"{name}={spec!r}: unknown scene kind {bad[0]!r} (one of {', '.join(KINDS)})")
    return kinds


def kind_scenes(kind: str, rng: np.random.Generator, n: int) -> list[Scene]:
    """``position-only``: a large red circle on blue, at any of the nine places; ``colours``: a
    large circle of any colour on any other background (held-out combinations never drawn)."""
    out: list[Scene] = []
    while len(out) < n:
        colour = "red" if kind == "position-only" else str(rng.choice(COLOUR_NAMES))
        background = "blue" if kind == "position-only" else str(rng.choice([b for b in COLOUR_NAMES if b != colour]))
        attrs = {"shape": "circle", "colour": colour, "size": "large",
                 "position": str(rng.choice(POSITION_NAMES)), "background": background}  # fmt: skip
        if not is_held_out(attrs):
            out.append(make_scene(rng, **attrs))
    return out


@dataclass
class BindData:
    """Latents (already scaled) and scenes per kind; ``full`` is the training pool itself."""

    scenes: dict[str, list[Scene]]
    latents: dict[str, torch.Tensor]

    @classmethod
    def build(cls, kinds: set[str], encode: Any, pool: Any, n: int, seed: int) -> BindData:
        """``encode``: uint8 images -> unscaled latents (``train.encode_means`` with the VAE); ``pool``:
        the training pool (scenes, scaled latents, scaling_factor); ``n`` scenes per other kind."""
        rng = np.random.default_rng(seed)
        scenes, latents = {"full": pool.scenes}, {"full": pool.latents}
        for kind in sorted(kinds - {"full"}):
            sc = kind_scenes(kind, rng, n)
            scenes[kind], latents[kind] = sc, encode([render(s) for s in sc]) * pool.scaling_factor
        return cls(scenes, latents)

    def batch(self, kinds: tuple[str, ...], size: int, rng: np.random.Generator) -> tuple[list[Scene], list[str],
                                                                                            torch.Tensor]:  # fmt: skip
        """Scenes, captions and latents, ``size`` split evenly between ``kinds``. Generated kinds
        always name every attribute; the training scenes get the usual captions."""
        scenes, caps, lats = [], [], []
        for j, kind in enumerate(kinds):
            idx = rng.integers(0, len(self.scenes[kind]), size // len(kinds) + (j < size % len(kinds)))
            sc = [self.scenes[kind][i] for i in idx]
            scenes += sc
            caps += [caption(s, rng, 0.0 if kind != "full" else 0.25) for s in sc]
            lats.append(self.latents[kind][torch.from_numpy(idx)])
        return scenes, caps, torch.cat(lats)


def named_caption(scene: Scene, position: str) -> str:
    """Every attribute of ``scene`` named, with ``position`` as its place (the true one or another)."""
    return f"a {scene.size} {scene.colour} {scene.shape} {position_phrase(position)} on a {scene.background} background"


def x0_error(unet: Any, noisy: torch.Tensor, noise: torch.Tensor, ts: torch.Tensor, hidden: torch.Tensor,
             alphas: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Mean squared error of the clean latent implied by the UNet's epsilon prediction, per image."""
    a = alphas[ts].view(-1, 1, 1, 1)
    pred = unet(noisy, ts, hidden).sample
    return ((pred - noise) ** 2 * ((1 - a) / a)).mean(dim=(1, 2, 3))


def high_t(latents: torch.Tensor, t_min: int, noise_fn: Any, noise_sched: Any,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Noisy latents at timesteps drawn from [t_min, last], their noise and timesteps."""
    last = int(noise_sched.config.num_train_timesteps)
    ts = torch.randint(t_min, last, (latents.shape[0],), generator=gen)
    noise = noise_fn(latents.shape, gen=gen)
    return noise_sched.add_noise(latents, noise, ts), noise, ts


@torch.no_grad()
def position_ratio(unet: Any, text: Any, tokens: Any, data: BindData, t_min: int, noise_fn: Any, noise_sched: Any,
                   rng: np.random.Generator, gen: torch.Generator, size: int = 64) -> float:  # fmt: skip
    """x0 error with a wrong position word over the right one, on fully named training scenes at
    t >= t_min: 1.0 means the model ignores the position word; above 1, the word moves the shape."""
    scenes, _, lat = data.batch(("full",), size, rng)
    noisy, noise, ts = high_t(lat, t_min, noise_fn, noise_sched, gen)
    alphas = noise_sched.alphas_cumprod
    right = [named_caption(s, s.position) for s in scenes]
    wrong = [named_caption(s, str(rng.choice([p for p in POSITION_NAMES if p != s.position]))) for s in scenes]
    err = [x0_error(unet, noisy, noise, ts, text(tokens(c)).last_hidden_state, alphas).mean().item()
           for c in (right, wrong)]  # fmt: skip
    return err[1] / err[0]


def run_phases(phases: list[Phase], models: tuple[Any, Any], opt: Any, data: BindData, tokens: Any, noise_sched: Any,
               noise_fn: Any, c: Any, rng: np.random.Generator, gen: torch.Generator, log: Any) -> None:  # fmt: skip
    """The curriculum: only the binding loss, the batches' scene kinds per phase, a constant
    learning rate ``c.bind_lr`` after a short warm-up; logs the loss and ``position_ratio``."""
    text, unet = models
    params = [p for m in models for p in m.parameters()]
    alphas = noise_sched.alphas_cumprod
    total, step, running = sum(p.steps for p in phases), 0, []
    for phase in phases:
        label = "+".join(phase.kinds)
        for _ in range(phase.steps):
            for g in opt.param_groups:
                g["lr"] = c.bind_lr * min(1.0, (step + 1) / 50)
            _, caps, lat = data.batch(phase.kinds, c.unet_batch, rng)
            noisy, noise, ts = high_t(lat, c.bind_t_min, noise_fn, noise_sched, gen)
            loss = x0_error(unet, noisy, noise, ts, text(tokens(caps)).last_hidden_state, alphas).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            running.append(loss.item())
            if step % c.log_every == 0:
                log.add("bind_loss", {"step": step, "kinds": label, "loss": float(np.mean(running))})
                running = []
            if step % 100 == 0 or step == total:
                ratio = position_ratio(unet, text, tokens, data, c.bind_t_min, noise_fn, noise_sched, rng, gen)
                log.add("bind_ratio", {"step": step, "kinds": label, "ratio": round(ratio, 4)}, echo=True)
