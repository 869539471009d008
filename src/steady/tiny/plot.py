"""The training curve of the tiny model as a PNG, drawn with Pillow (no plotting dependency).

Left: VAE and UNet losses by step (log scale). Right: checker accuracy of the evaluations
(VAE reconstructions, then the EMA model's samples) by step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

W, H, PAD = 520, 320, 44
COLOURS = {"vae": (200, 80, 40), "unet": (40, 90, 200), "shape": (40, 150, 60),
           "colour": (200, 60, 160), "size": (120, 120, 0), "position": (0, 150, 160)}  # fmt: skip


def _panel(draw: ImageDraw.ImageDraw, x0: int, title: str, series: dict[str, list[tuple[float, float]]],
           log_y: bool, y_range: tuple[float, float] | None = None) -> None:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return
    xmax = max(x for x, _ in pts) or 1.0
    ys = [math.log10(max(y, 1e-6)) if log_y else y for _, y in pts]
    ylo, yhi = y_range if y_range else (min(ys), max(ys))
    if yhi - ylo < 1e-9:
        yhi = ylo + 1.0
    box = (x0 + PAD, 20, x0 + W - 10, H - PAD)
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((x0 + PAD, 4), title, fill=(0, 0, 0))

    def to_xy(x: float, y: float) -> tuple[float, float]:
        yv = math.log10(max(y, 1e-6)) if log_y else y
        return (box[0] + (box[2] - box[0]) * x / xmax, box[3] - (box[3] - box[1]) * (yv - ylo) / (yhi - ylo))

    for frac in (0.0, 0.5, 1.0):
        yv = ylo + frac * (yhi - ylo)
        label = f"{10 ** yv:.3g}" if log_y else f"{yv:.2f}"
        draw.text((x0 + 2, box[3] - (box[3] - box[1]) * frac - 6), label, fill=(0, 0, 0))
    draw.text((box[2] - 60, H - PAD + 6), f"step {int(xmax)}", fill=(0, 0, 0))
    for i, (name, s) in enumerate(series.items()):
        colour = COLOURS.get(name, (0, 0, 0))
        if len(s) > 1:
            draw.line([to_xy(x, y) for x, y in s], fill=colour, width=2)
        for x, y in s if len(s) < 30 else []:
            cx, cy = to_xy(x, y)
            draw.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=colour)
        draw.text((box[0] + 8 + 70 * i, H - PAD + 20), name, fill=colour)


def plot_training(data: dict[str, Any], path: Path) -> Path:
    img = Image.new("RGB", (2 * W, H), "white")
    draw = ImageDraw.Draw(img)
    vae_steps = data["config"]["vae_steps"]
    losses = {
        "vae": [(r["step"], r["loss"]) for r in data["vae_loss"]],
        "unet": [(vae_steps + r["step"], r["loss"]) for r in data["unet_loss"]],
    }
    _panel(draw, 0, "loss (VAE, then UNet+text; log scale)", losses, log_y=True)
    acc: dict[str, list[tuple[float, float]]] = {a: [] for a in ("shape", "colour", "size", "position")}
    for r in data["vae_eval"]:
        for a in acc:
            acc[a].append((r["step"], r[a]))
    for r in data["unet_eval"]:
        for a in acc:
            acc[a].append((vae_steps + r["step"], r["accuracy"][a]))
    _panel(draw, W, "checker accuracy (VAE reconstructions, then samples)", acc, log_y=False,
           y_range=(0.0, 1.0))  # fmt: skip
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    tmp.replace(path)
    return path
