"""The training curve of the tiny model as a PNG (steady.charts: Pillow, no plotting dependency).

Left: VAE, position-binding and UNet losses by step (log scale). Right: checker accuracy of the evaluations by
step: VAE reconstructions, then the EMA model's samples, then the polished decoder's
reconstructions (grey lines separate the phases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steady.charts import W, canvas, panel, save_atomic

COLOURS = {"vae": (200, 80, 40), "bind": (150, 40, 200), "unet": (40, 90, 200), "decoder": (120, 60, 20),
           "shape": (40, 150, 60), "colour": (200, 60, 160), "size": (120, 120, 0),
           "position": (0, 150, 160)}  # fmt: skip


def plot_training(data: dict[str, Any], path: Path) -> Path:
    img, draw = canvas(2)
    vae_steps = 0 if data.get("vae_from") else data["config"]["vae_steps"]  # --vae-from: no VAE phase
    bind = data.get("bind_loss", [])  # the position-binding curriculum (step 3a), before the UNet's step 3
    unet_start = vae_steps + (bind[-1]["step"] if bind else 0)
    unet_end = unet_start + data["config"]["unet_steps"]
    losses = {
        "vae": [(r["step"], r["loss"]) for r in data["vae_loss"]],
        "bind": [(vae_steps + r["step"], r["loss"]) for r in bind],
        "unet": [(unet_start + r["step"], r["loss"]) for r in data["unet_loss"]],
        "decoder": [(unet_end + r["step"], r["loss"])
                    for r in data.get("decoder_loss", [])],
    }
    panel(draw, 0, "loss (VAE, position binding, UNet+text; log scale)", losses, log_y=True, colours=COLOURS)
    acc: dict[str, list[tuple[float, float]]] = {a: [] for a in ("shape", "colour", "size", "position")}
    for r in data["vae_eval"]:
        for a in acc:
            acc[a].append((r["step"], r[a]))
    for r in data["unet_eval"]:
        for a in acc:
            acc[a].append((unet_start + r["step"], r["accuracy"][a]))
    for r in data.get("decoder_eval", []):
        for a in acc:
            acc[a].append((unet_end + r["step"], r[a]))
    panel(draw, W, "accuracy: VAE recon. | samples | polished-decoder recon.", acc, y_range=(0.0, 1.0),
          colours=COLOURS, markers=sorted({vae_steps, unet_start, unet_end}))  # fmt: skip
    return save_atomic(img, path)
