"""Line charts as PNG, drawn with Pillow (no plotting dependency): training curves, soak reports.

    img = Image.new("RGB", (2 * W, H), "white"); draw = ImageDraw.Draw(img)
    panel(draw, 0, "title", {"name": [(x, y), ...]}, log_y=False)
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

W, H, PAD = 520, 320, 44
PALETTE = ((40, 90, 200), (200, 80, 40), (40, 150, 60), (200, 60, 160), (120, 120, 0), (0, 150, 160), (0, 0, 0))


def panel(draw: ImageDraw.ImageDraw, x0: int, title: str, series: dict[str, list[tuple[float, float]]],
          log_y: bool = False, y_range: tuple[float, float] | None = None,
          colours: dict[str, tuple[int, int, int]] | None = None, x_label: str = "step",
          markers: list[float] | None = None) -> None:  # fmt: skip
    """One chart in the box [x0, x0 + W) x [0, H): a line per series, optional vertical markers."""
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
        label = f"{10 ** yv:.3g}" if log_y else f"{yv:.3g}"
        draw.text((x0 + 2, box[3] - (box[3] - box[1]) * frac - 6), label, fill=(0, 0, 0))
    draw.text((box[2] - 90, H - PAD + 6), f"{x_label} {xmax:.4g}", fill=(0, 0, 0))
    for x in markers or []:
        px = box[0] + (box[2] - box[0]) * x / xmax
        draw.line([(px, box[1]), (px, box[3])], fill=(180, 180, 180), width=1)
    for i, (name, s) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        if len(s) > 1:
            draw.line([to_xy(x, y) for x, y in s], fill=colour, width=2)
        for x, y in s if len(s) < 30 else []:
            cx, cy = to_xy(x, y)
            draw.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=colour)
        draw.text((box[0] + 8 + 80 * i, H - PAD + 20), name, fill=colour)


def save_atomic(img: Image.Image, path: Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def canvas(panels: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (panels * W, H), "white")
    return img, ImageDraw.Draw(img)
