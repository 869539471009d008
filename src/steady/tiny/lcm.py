"""A few-step version of the embedded model: an LCM-LoRA distilled from it (latent consistency
distillation), trained on this CPU, saved in the kohya layout like any LoRA.

    # The shipped LCM-LoRA, in five runs, each starting from the one before: the first tiny-lcm
    # (git show 2bdc521:src/steady/tiny/loras/tiny-lcm.safetensors) is the first run's step-1,000
    # file; the second run's is at a6ff3f7; the third run's file was not kept; the fourth's is at
    # b94831b. The fifth goes on from the fourth at a third of its learning rate.
    python -m steady.tiny.teach lcm --targets attn-conv --out build/lcm1.safetensors --threads 1 \
        --steps 1500 --batch 16 --pool 2000 --lr 5e-4 --save-every 250
    python -m steady.tiny.teach lcm --init build/lcm1.safetensors --skip 2 --out build/lcm2.safetensors \
        --threads 1 --steps 1000 --batch 16 --pool 2000 --lr 3e-4 --warmup 20 --save-every 250
    python -m steady.tiny.teach lcm --init build/lcm2.safetensors --skip 2 --out build/lcm3.safetensors \
        --threads 1 --steps 1000 --batch 16 --pool 2000 --lr 3e-4 --warmup 20 --ode-weight 1 --ode-pairs 1000
    python -m steady.tiny.teach lcm --init build/lcm3.safetensors --skip 2 --out build/lcm4.safetensors \
        --threads 1 --rank 32 --alpha 32 --steps 1000 --batch 16 --pool 2000 --lr 3e-4 --warmup 20 \
        --ode-weight 3 --ode-pairs 2000 --ode-cache build/traj2000.safetensors
    python -m steady.tiny.teach lcm --init build/lcm4.safetensors --skip 2 --out build/tiny-lcm.safetensors \
        --threads 1 --rank 32 --alpha 32 --steps 1000 --batch 16 --pool 2000 --lr 1e-4 --warmup 20 \
        --ode-weight 3 --ode-pairs 2000 --ode-cache build/traj2000.safetensors --save-every 250
    python -m steady.tiny.teach lcm --out /tmp/l.safetensors --quick       # a smoke run (seconds)

Teacher: the embedded model as it samples by default (its own noise schedule, CFG 5). Student:
the same model plus LoRA layers on the UNet (peft), the only trained weights: LCM-LoRA's layer set
(``LCM_TARGETS``; ``--targets attn-conv``: attention and resnet convolutions only), or, with
``--init FILE``, that set started from a LoRA file's matching layers. Each step:
 1. a clean latent of the data set with a fresh caption, noised to ``t_n``, one of the 50 DDIM
    timesteps LCMScheduler uses (``original_inference_steps``: 19, 39, ... 999);
 2. the teacher's CFG-5 epsilon, one DDIM step from ``t_n`` to ``t_n - 20 x skip`` (the skipping step;
    the shipped file's second run: 40);
 3. the consistency function f(x, t) = c_skip(t) x + c_out(t) x0(x, t), with LCMScheduler's
    boundary conditions (sigma_data 0.5, timestep scaling 10), of the student at ``t_n`` and, without
    gradient, of the student itself there (LCM-LoRA's target: no EMA copy);
 4. the pseudo-Huber distance between the two (c = 0.001), AdamW.
 5. with ``--ode-weight W``: the same distance between the student's f at a state of one of the
    teacher's own 50-step DDIM CFG-5 trajectories (sampled once, from pure noise, before training)
    and that trajectory's end, weighted W. Step 2's one-step target compounds its error over
    the 4 steps of a few-step image; this one is the teacher's whole answer, and at t = 999 it
    is the exact start of a few-step image, where the layout (and so the shape) is decided.
At inference: the ``LCM`` sampler, 4 steps, CFG 1 (the guidance is distilled in: one UNet call a step).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steady.tiny import arch as A
from steady.tiny.adapt import (
    UNET_TARGETS,
    batch_from,
    encode_pool,
    kohya_metadata,
    load_base,
    lr_now,
    save_atomic,
    start_from,
    token_ids,
)
from steady.tiny.data import dataset

DDIM_STEPS = 50  # LCMScheduler's original_inference_steps
SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0
HUBER_C = 0.001
# LCM-LoRA's layers (the latent-consistency distillation script's list): attention, feed-forward,
# every resnet convolution with its time-embedding projection, and the resamplers' convolutions.
LCM_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
               "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]


@dataclass(frozen=True)
class LcmConfig:
    seed: int = 0
    threads: int = 2
    rank: int = 16
    alpha: float = 16.0
    steps: int = 800
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 50
    pool: int = 4000
    cfg: float = 5.0  # the teacher's guidance: the embedded model's own (EMBEDDED_CFG_SCALE)
    empty_caption: float = 0.0
    log_every: int = 25
    save_every: int = 0  # also write the file every this many steps (0: only at the end)
    eval_images: int = 32
    targets: str = "lcm"  # "lcm": LCM_TARGETS; "attn-conv": adapt.UNET_TARGETS (attention and resnet convs)
    init: str = ""  # a kohya LoRA file (of the same rank) whose layers start the matching ones
    skip: int = 1  # the teacher's DDIM step, in grid steps of 20 timesteps (LCM's skipping step k = 20 x skip)
    ode_weight: float = 0.0  # weight of the whole-trajectory loss (step 5; 0: off)
    ode_pairs: int = 2000  # teacher trajectories for it, sampled once before training
    ode_top: float = 0.5  # share of its items taken at t = 999, where a few-step image starts
    ode_cache: str = ""  # a file the trajectories are read from when it exists, else written to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = {"steps": 4, "batch": 4, "pool": 16, "log_every": 2, "eval_images": 2, "warmup": 2, "ode_pairs": 8}


def boundary(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LCMScheduler's c_skip and c_out at timesteps ``t`` (B,), shaped to broadcast on latents."""
    scaled = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip[:, None, None, None], c_out[:, None, None, None]


def consistency(unet: Any, x: torch.Tensor, t: torch.Tensor, hidden: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """f(x, t): the boundary-conditioned estimate of the clean latent from the epsilon prediction."""
    a = alphas[t][:, None, None, None]
    eps = unet(x, t, hidden).sample
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    c_skip, c_out = boundary(t)
    return c_skip * x + c_out * x0


def huber(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The pseudo-Huber distance (c = ``HUBER_C``), averaged."""
    return (((pred - target) ** 2 + HUBER_C**2).sqrt() - HUBER_C).mean()


def teacher_ddim(teacher: Any, x: torch.Tensor, t: torch.Tensor, hidden: torch.Tensor, empty: torch.Tensor,
                 cfg: float, a: torch.Tensor, a_prev: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """One DDIM step (eta 0) of the teacher at CFG ``cfg`` from ``x`` at ``t`` (alpha-bar ``a``) to
    alpha-bar ``a_prev``."""
    n = x.shape[0]
    e_u, e_c = teacher(torch.cat([x, x]), torch.cat([t, t]),
                       torch.cat([empty.expand(n, -1, -1), hidden])).sample.chunk(2)  # fmt: skip
    eps = e_u + cfg * (e_c - e_u)
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


@dataclass
class Trajectories:
    """The teacher's DDIM CFG trajectories on the 50-step grid: states (N, 50, 4, 16, 16) at
    ``grid`` (ascending), their ends (N, 4, 16, 16), and the captions' text states."""

    states: torch.Tensor
    ends: torch.Tensor
    hidden: torch.Tensor


@torch.no_grad()
def teacher_trajectories(base: Any, teacher: Any, pool: Any, c: LcmConfig, grid: torch.Tensor,
                         alphas: torch.Tensor, empty: torch.Tensor) -> Trajectories:  # fmt: skip
    """``c.ode_pairs`` trajectories from pure noise, each with a fresh caption of a pool scene."""
    rng, gen = np.random.default_rng(c.seed + 3), torch.Generator().manual_seed(c.seed + 4)
    states, ends, hiddens, t0 = [], [], [], time.perf_counter()
    for start in range(0, c.ode_pairs, 64):
        n = min(64, c.ode_pairs - start)
        _, caps, _ = batch_from([(pool, n)], rng, replace(c, empty_caption=0.0))
        hidden = base.text(token_ids(base.tokenizer, caps)).last_hidden_state
        x = torch.randn((n, 4, 16, 16), generator=gen)
        path = []
        for j in range(len(grid) - 1, -1, -1):
            path.append(x.half())
            a_prev = alphas[grid[j - 1]] if j > 0 else torch.tensor(1.0)
            x = teacher_ddim(teacher, x, grid[j].expand(n), hidden, empty, c.cfg, alphas[grid[j]], a_prev)
        states.append(torch.stack(path[::-1], dim=1))
        ends.append(x)
        hiddens.append(hidden.half())
        print(f"lcm: teacher trajectories {start + n}/{c.ode_pairs} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return Trajectories(torch.cat(states), torch.cat(ends), torch.cat(hiddens))


def cached_trajectories(base: Any, teacher: Any, pool: Any, c: LcmConfig, grid: torch.Tensor,
                        alphas: torch.Tensor, empty: torch.Tensor) -> Trajectories:  # fmt: skip
    """``teacher_trajectories``, or the ones ``c.ode_cache`` holds (made with the same seed and count)."""
    from safetensors.torch import load_file

    cache = Path(c.ode_cache) if c.ode_cache else None
    if cache is not None and cache.exists():
        saved = load_file(str(cache))
        print(f"lcm: {len(saved['ends'])} teacher trajectories from {cache}", flush=True)
        return Trajectories(saved["states"], saved["ends"], saved["hidden"])
    traj = teacher_trajectories(base, teacher, pool, c, grid, alphas, empty)
    if cache is not None:
        save_atomic({"states": traj.states, "ends": traj.ends, "hidden": traj.hidden}, cache, {})
    return traj


def ode_loss(unet: Any, traj: Trajectories, c: LcmConfig, grid: torch.Tensor, alphas: torch.Tensor,
             gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Step 5: the student's f at trajectory states against the trajectories' ends."""
    idx = torch.randint(0, len(traj.ends), (c.batch,), generator=gen)
    top = torch.rand(c.batch, generator=gen) < c.ode_top
    j = torch.where(top, len(grid) - 1, torch.randint(0, len(grid), (c.batch,), generator=gen))
    x = traj.states[idx, j].float()
    pred = consistency(unet, x, grid[j], traj.hidden[idx].float(), alphas)
    return huber(pred, traj.ends[idx])


def train_lcm(c: LcmConfig, out: Path, name: str) -> dict[str, Any]:
    import copy

    from diffusers import DDPMScheduler
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(c.seed)
    if c.threads:
        torch.set_num_threads(c.threads)
    t0 = time.perf_counter()
    base = load_base()
    teacher = copy.deepcopy(base.unet).eval()
    pool = encode_pool(base, list(dataset(c.seed + 200, c.pool, drop_prob=0.0)))
    targets = LCM_TARGETS if c.targets == "lcm" else UNET_TARGETS
    inject_adapter_in_model(LoraConfig(r=c.rank, lora_alpha=c.alpha, target_modules=targets), base.unet)
    if c.init:
        print(f"lcm: {start_from(base, Path(c.init))} layers start from {c.init}", flush=True)
    params = [p for n, p in base.unet.named_parameters() if "lora_" in n]
    opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=0.0)
    alphas = DDPMScheduler(**A.SCHEDULE).alphas_cumprod
    step_ratio = A.SCHEDULE["num_train_timesteps"] // DDIM_STEPS
    grid = torch.arange(1, DDIM_STEPS + 1) * step_ratio - 1  # 19, 39, ... 999
    rng, gen = np.random.default_rng(c.seed + 1), torch.Generator().manual_seed(c.seed + 2)
    with torch.no_grad():
        empty = base.text(token_ids(base.tokenizer, [""])).last_hidden_state
    traj = cached_trajectories(base, teacher, pool, c, grid, alphas, empty) if c.ode_weight else None
    log: list[dict[str, float]] = []
    running: list[float] = []
    base.unet.train()
    for step in range(c.steps):
        for g in opt.param_groups:
            g["lr"] = lr_now(step, c)
        latents, caps, _ = batch_from([(pool, c.batch)], rng, c)
        with torch.no_grad():
            hidden = base.text(token_ids(base.tokenizer, caps)).last_hidden_state
        t = grid[torch.randint(0, DDIM_STEPS, (c.batch,), generator=gen)]
        prev = (t - c.skip * step_ratio).clamp(min=0)
        noise = torch.randn(latents.shape, generator=gen)
        a_t = alphas[t][:, None, None, None]
        x_t = a_t.sqrt() * latents + (1 - a_t).sqrt() * noise
        pred = consistency(base.unet, x_t, t, hidden, alphas)
        with torch.no_grad():
            a_prev = torch.where(prev[:, None, None, None] > 0, alphas[prev][:, None, None, None], alphas[0])
            x_prev = teacher_ddim(teacher, x_t, t, hidden, empty, c.cfg, a_t, a_prev)
            target = consistency(base.unet, x_prev, prev, hidden, alphas)
        loss = huber(pred, target)
        if traj is not None:
            loss = loss + c.ode_weight * ode_loss(base.unet, traj, c, grid, alphas, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running.append(loss.item())
        if (step + 1) % c.log_every == 0:
            log.append({"step": step + 1, "loss": float(np.mean(running)), "t": round(time.perf_counter() - t0, 1)})
            print("lcm", json.dumps(log[-1]), flush=True)
            running = []
        if c.save_every and (step + 1) % c.save_every == 0 and step + 1 < c.steps:
            save_atomic(lcm_kohya_state(base.unet, c), out, kohya_metadata(
                name, replace(c, steps=step + 1), time.perf_counter() - t0, {"loss": log}))  # fmt: skip
    base.unet.eval()
    seconds = time.perf_counter() - t0
    report = lcm_reading(base, c.eval_images)
    state = lcm_kohya_state(base.unet, c)
    save_atomic(state, out, kohya_metadata(name, c, seconds, {"loss": log, "reading": report}))
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KB) after {seconds:.0f} s; 4 LCM steps: {report}", flush=True)
    return {"seconds": seconds, "loss": log, "reading": report}


def lcm_kohya_state(unet: Any, c: LcmConfig) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    out: dict[str, torch.Tensor] = {}
    for key, value in get_peft_model_state_dict(unet).items():
        module, kind = key.rsplit(".lora_", 1)
        prefix = "lora_unet_" + module.replace(".", "_")
        out[prefix + (".lora_down.weight" if kind.startswith("A") else ".lora_up.weight")] = value.half()
        out[prefix + ".alpha"] = torch.tensor(float(c.alpha), dtype=torch.float16)
    return out


@torch.no_grad()
def lcm_reading(base: Any, n: int, steps: int = 4) -> dict[str, float]:
    """The checker's accuracy on ``n`` of eval-tiny's prompts, 4 LCMScheduler steps, no CFG: a
    first look, not the measured figure (that is ``steady eval-tiny --sampler LCM``)."""
    from diffusers import LCMScheduler

    from steady.tiny.common import to_uint8
    from steady.tiny.evaluate import eval_prompts, score

    prompts = eval_prompts()[:n]
    sched = LCMScheduler(**A.SCHEDULE, set_alpha_to_one=False, steps_offset=1)
    sched.set_timesteps(steps)
    hidden = base.text(token_ids(base.tokenizer, [p.prompt for p in prompts])).last_hidden_state
    x = torch.cat([torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(p.seed)) for p in prompts])
    gen = torch.Generator().manual_seed(0)
    for t in sched.timesteps:
        x = sched.step(base.unet(x, t, hidden).sample, t, x, generator=gen).prev_sample
    images = to_uint8(base.vae.decode(x / base.scale).sample)
    return {k: round(v, 3) for k, v in score(prompts, list(images)).accuracy.items()}
