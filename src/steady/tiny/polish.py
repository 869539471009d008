"""Step 5 of `python -m steady.tiny.train`: polish the decoder of a saved tiny model alone.

    python -m steady.tiny.train --out build/tiny --polish-only --decoder-steps 4000

The encoder stays frozen, so the latents the UNet learned to produce do not move; the decoder
learns to draw them back with the outline-weighted loss (``decoder_edge_weight``), which is where
a small cross differs from a blob. The new decoder replaces the folder's only if the checker scores
its reconstructions better; ``training.json`` gains ``decoder_loss``, ``decoder_eval`` and ``decoder``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steady.tiny.common import (
    TrainConfig,
    loss_weights_vae,
    lr_at,
    reconstruction_accuracy,
    reconstruction_loss,
    to_tensor,
)
from steady.tiny.data import dataset


def polish_decoder(c: TrainConfig, out: Path) -> dict[str, Any]:
    """Step 5 on a saved folder; appends ``decoder_loss`` / ``decoder_eval`` to training.json."""
    from diffusers import AutoencoderKL

    torch.manual_seed(c.seed + 4)
    if c.threads:
        torch.set_num_threads(c.threads)
    path = out / "training.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["config"].update({"decoder_steps": c.decoder_steps, "decoder_lr": c.decoder_lr,
                           "decoder_edge_weight": c.decoder_edge_weight})
    data["decoder_loss"], data["decoder_eval"] = [], []
    vae = AutoencoderKL.from_pretrained(out / "vae", torch_dtype=torch.float32).eval()
    t0 = time.perf_counter()
    before = reconstruction_accuracy(vae)
    data["decoder_eval"].append({"step": 0, **before})
    vae.requires_grad_(False)
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=c.decoder_lr, weight_decay=0.0)
    running = []
    vae.decoder.train()
    for step in range(c.decoder_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c.decoder_steps, c.decoder_lr, 100)
        batch = list(dataset(c.seed + 5, c.vae_batch, start=step * c.vae_batch))
        x = to_tensor(np.stack([s.image for s in batch]))
        w = loss_weights_vae(batch, c.vae_fg_weight, c.decoder_edge_weight)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean  # what the UNet was trained to produce
        rec = vae.decode(z).sample
        loss = reconstruction_loss(rec, x, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        if (step + 1) % c.log_every == 0:
            data["decoder_loss"].append({"step": step + 1, "loss": float(np.mean(running))})
            running = []
        if c.vae_eval_every and ((step + 1) % c.vae_eval_every == 0 or step + 1 == c.decoder_steps):
            vae.eval()
            row = {"step": step + 1, **reconstruction_accuracy(vae)}
            data["decoder_eval"].append(row)
            print("decoder_eval", json.dumps(row), flush=True)
            vae.decoder.train()
    vae.eval()
    after = reconstruction_accuracy(vae)
    keys = ("shape", "colour", "size", "position", "background")
    kept = sum(after[k] for k in keys) > sum(before[k] for k in keys)
    if kept:
        tmp = out / "vae.polished.tmp"
        vae.half().save_pretrained(tmp, safe_serialization=True)
        shutil.rmtree(out / "vae")
        tmp.rename(out / "vae")
    data["decoder"] = {"kept": kept, "before": before, "after": after}
    data["timings_s"]["decoder"] = round(time.perf_counter() - t0, 1)
    print("decoder polish", json.dumps(data["decoder"]), flush=True)
    tmp_log = path.with_suffix(".tmp")
    tmp_log.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp_log, path)
    from steady.tiny.plot import plot_training

    plot_training(data, out / "loss.png")
    return data
