"""Deterministic generator of captioned 64x64 scenes for training and evaluating the tiny model.

``sample_scene`` draws every attribute uniformly (rejecting held-out combinations when asked),
``render`` draws the scene anti-aliased (4x supersampled, then box-filtered down, so edges
are smooth the way a VAE reproduces them), ``dataset(seed, n)`` yields ``Sample``s that depend
only on (seed, index), so any sample can be regenerated alone with ``sample(seed, index)``.

Look at some:  python -m steady.tiny.data --seed 0 -n 16 --out /tmp/scenes.png
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from steady.tiny.scenes import (
    BACKGROUNDS,
    CELL_CENTRES,
    COLOUR_JITTER,
    COLOUR_NAMES,
    CROSS_ARM_HALF_WIDTH,
    CROSS_HALF_EXTENT,
    IMAGE_SIZE,
    POSITION_JITTER,
    POSITIONS,
    SCALE_RANGES,
    SHAPES,
    SIZES,
    SQUARE_HALF_SIDE,
    TRIANGLE_CIRCUMRADIUS,
    Scene,
    caption,
    colour_rgb,
    is_held_out,
)

SUPERSAMPLE = 4
DEFAULT_DROP_PROB = 0.25


@dataclass(frozen=True)
class Sample:
    """One training/eval example: the rendered image, its caption and the scene behind it."""

    image: np.ndarray  # uint8, (64, 64, 3)
    caption: str
    scene: Scene


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    moved = np.asarray(rgb) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    r, g, b = (int(v) for v in np.clip(moved, 0, 255))
    return (r, g, b)


def make_scene(
    rng: np.random.Generator, shape: str, colour: str, size: str, position: str, background: str
) -> Scene:
    """A scene with the given attributes and freshly drawn geometry and colour jitter."""
    if background == colour:
        raise ValueError(f"background={background!r} must differ from colour={colour!r}")
    cell = next(p for p in POSITIONS if p.name == position)
    lo, hi = SCALE_RANGES[size]
    jx, jy = rng.uniform(-POSITION_JITTER, POSITION_JITTER, size=2)
    return Scene(
        shape=shape,
        colour=colour,
        size=size,
        position=position,
        background=background,
        cx=float(CELL_CENTRES[cell.col] + jx),
        cy=float(CELL_CENTRES[cell.row] + jy),
        scale=float(rng.uniform(lo, hi)),
        rotation=0.0,
        rgb=_jitter(colour_rgb(colour), rng),
        background_rgb=_jitter(colour_rgb(background), rng),
    )


def sample_scene(rng: np.random.Generator, holdout: bool = True) -> Scene:
    """A scene with every attribute drawn uniformly; background != colour always.

    With ``holdout`` on (training), combinations in ``scenes.HOLDOUTS`` are never returned
    (rejection sampling); with it off (evaluation), they are drawn like any other.
    """
    while True:
        colour = str(rng.choice(COLOUR_NAMES))
        attrs = {
            "shape": str(rng.choice(SHAPES)),
            "colour": colour,
            "size": str(rng.choice(SIZES)),
            "position": str(rng.choice([p.name for p in POSITIONS])),
            "background": str(rng.choice([b for b in BACKGROUNDS if b != colour])),
        }
        if not (holdout and is_held_out(attrs)):
            return make_scene(rng, **attrs)


def shape_polygon(
    shape: str, cx: float, cy: float, scale: float, rotation: float = 0.0
) -> list[tuple[float, float]]:
    """Vertices (x, y in image pixels) of a polygonal shape; circles are not polygons."""
    s = scale
    if shape == "square":
        h = SQUARE_HALF_SIDE * s
        pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
    elif shape == "triangle":
        r = TRIANGLE_CIRCUMRADIUS * s
        # apex up; shift so the bounding box (height 1.5 r) is centred on (cx, cy)
        half_w, top, bottom = r * np.sqrt(3) / 2, -0.75 * r, 0.75 * r
        pts = [(0.0, top), (half_w, bottom), (-half_w, bottom)]
    elif shape == "cross":
        e, w = CROSS_HALF_EXTENT * s, CROSS_ARM_HALF_WIDTH * s
        pts = [(-w, -e), (w, -e), (w, -w), (e, -w), (e, w), (w, w),
               (w, e), (-w, e), (-w, w), (-e, w), (-e, -w), (-w, -w)]  # fmt: skip
    else:
        raise ValueError(f"shape={shape!r} has no polygon")
    theta = np.deg2rad(rotation)
    c, sn = float(np.cos(theta)), float(np.sin(theta))
    # counter-clockwise on screen: y axis points down
    return [(cx + x * c + y * sn, cy - x * sn + y * c) for x, y in pts]


def coverage(shape: str, cx: float, cy: float, scale: float, rotation: float = 0.0) -> np.ndarray:
    """Fraction of each pixel the shape covers: float32 (64, 64) in [0, 1], 4x supersampled."""
    k = SUPERSAMPLE
    big = Image.new("F", (IMAGE_SIZE * k, IMAGE_SIZE * k), 0.0)
    draw = ImageDraw.Draw(big)
    if shape == "circle":
        r = scale
        draw.ellipse([(cx - r) * k, (cy - r) * k, (cx + r) * k - 1, (cy + r) * k - 1], fill=1.0)
    else:
        # PIL fills a subpixel when its top-left corner lies inside; shift by half a subpixel
        # so coverage is measured at subpixel centres.
        pts = shape_polygon(shape, cx, cy, scale, rotation)
        draw.polygon([(x * k - 0.5, y * k - 0.5) for x, y in pts], fill=1.0)
    return np.asarray(big.reduce(k), dtype=np.float32)  # exact mean of each k*k block


def render(scene: Scene) -> np.ndarray:
    """The scene as a uint8 (64, 64, 3) array, anti-aliased by 4x supersampling."""
    c = coverage(scene.shape, scene.cx, scene.cy, scene.scale, scene.rotation)[:, :, None]
    fg = np.asarray(scene.rgb, dtype=np.float32)
    bg = np.asarray(scene.background_rgb, dtype=np.float32)
    return np.rint(bg + c * (fg - bg)).astype(np.uint8)


def sample(
    seed: int, index: int, drop_prob: float = DEFAULT_DROP_PROB, holdout: bool = True
) -> Sample:
    """Sample ``index`` of the data set ``seed``: a function of (seed, index) alone."""
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng, holdout=holdout)
    return Sample(image=render(scene), caption=caption(scene, rng, drop_prob), scene=scene)


def dataset(
    seed: int, n: int, drop_prob: float = DEFAULT_DROP_PROB, holdout: bool = True, start: int = 0
) -> Iterator[Sample]:
    """Samples ``start .. start+n-1`` of data set ``seed``; the same seed gives the same data."""
    if n < 0:
        raise ValueError(f"n={n!r} must be >= 0")
    for index in range(start, start + n):
        yield sample(seed, index, drop_prob=drop_prob, holdout=holdout)


def contact_sheet(samples: list[Sample], columns: int = 8) -> Image.Image:
    """The samples' images tiled in a grid (for looking at the data, not for training)."""
    rows = -(-len(samples) // columns)
    sheet = Image.new("RGB", (columns * IMAGE_SIZE, max(rows, 1) * IMAGE_SIZE), (255, 255, 255))
    for i, s in enumerate(samples):
        sheet.paste(Image.fromarray(s.image), ((i % columns) * IMAGE_SIZE, (i // columns) * IMAGE_SIZE))
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--out", required=True, help="PNG path for a contact sheet")
    args = parser.parse_args(argv)
    samples = list(dataset(args.seed, args.n))
    contact_sheet(samples).save(args.out)
    for i, s in enumerate(samples):
        print(f"{i:4d}  {s.caption}")


if __name__ == "__main__":
    main()
