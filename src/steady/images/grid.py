"""The X/Y grid PNG of a run: its cells side by side, axis values written above and beside.

    path = write_grid(job, catalog)     # OUT_DIR/RUN-grid.png, atomically; None when the run has no axes

The cells themselves are the run's ordinary images (each in the catalog with its own parameters);
the grid is a picture for comparing them. It carries a `steady-grid` text chunk with the axes
and is not a catalog row (reconcile leaves PNGs without our `steady` chunk alone).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from steady.images.pngmeta import _create_temp

MAX_CELL = 512  # cells of bigger images are scaled down to this on their long side
MARGIN = 8


def grid_path(job: Any) -> Path:
    """Where a run's grid PNG lives: beside its images, named by the run."""
    return Path(job.out_dir) / f"{job.run_id:05d}-grid.png"


def axis_labels(axis: dict[str, Any]) -> list[str]:
    """The grid's labels for an axis, as A1111's X/Y plot writes them: a Prompt S/R value alone
    (it is the text that changed), any other value after its axis name ("Seed: 1", "CFG: 7")."""
    if axis["kind"] == "prompt":
        return list(axis["texts"])
    return [f"{axis['label']}: {text}" for text in axis["texts"]]


def write_grid(job: Any, catalog: Any) -> Path | None:
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    if not job.variants or not job.variants.get("axes"):
        return None
    axes = job.variants["axes"]
    cells = {(v.get("x"), v.get("y")): i for i, v in enumerate(job.variants["variants"])}
    paths = {r.index: r.path for r in catalog.images_of_run(job.run_id)}
    x_axis, y_axis = axes[0], axes[1] if len(axes) > 1 else None
    columns, rows = len(x_axis["values"]), len(y_axis["values"]) if y_axis else 1
    with Image.open(next(iter(paths.values()))) as first:
        w, h = first.size
    scale = min(1.0, MAX_CELL / max(w, h))
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    font = ImageFont.load_default(size=max(12, min(24, cw // 8)))
    label_h = font.size + 2 * MARGIN
    x_texts = axis_labels(x_axis)
    y_texts = axis_labels(y_axis) if y_axis else []
    label_w = (max(_text_width(font, t) for t in y_texts) + 2 * MARGIN) if y_axis else 0
    sheet = Image.new("RGB", (label_w + columns * cw, label_h + rows * ch), "white")
    draw = ImageDraw.Draw(sheet)
    for x, text in enumerate(x_texts):
        draw.text((label_w + x * cw + cw / 2, label_h / 2), f"{text}", fill="black", font=font, anchor="mm")
    for y in range(rows):
        if y_axis:
            draw.text((label_w / 2, label_h + y * ch + ch / 2), y_texts[y], fill="black", font=font, anchor="mm")
        for x in range(columns):
            index = cells.get((x, y if y_axis else None))
            if index is None or index not in paths:
                continue  # a cell the run did not make (cancelled): left white
            with Image.open(paths[index]) as image:
                cell = image.convert("RGB").resize((cw, ch)) if scale < 1 else image.convert("RGB")
                sheet.paste(cell, (label_w + x * cw, label_h + y * ch))
    meta = PngInfo()
    meta.add_text("steady-grid", json.dumps({"run_id": job.run_id, "axes": axes}))
    target = grid_path(job)
    handle, temp = _create_temp(target.parent, target.name)  # a temp name reconcile knows to clean up
    try:
        with handle:
            sheet.save(handle, format="PNG", pnginfo=meta)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)
