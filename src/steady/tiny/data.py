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
from PIL import Image

from steady.tiny.scenes import (
    BACKGROUNDS,
    CELL_CENTRES,
    COLOUR_JITTER,
    COLOUR_NAMES,
    CROSS_ARM_HALF_WIDTH,
    CROSS_HALF_EXTENT,
    IMAGE_SIZE,
    NEW_SHAPES,
    POSITION_JITTER,
    POSITIONS,
    SCALE_RANGES,
    SHAPES,
    SIZES,
    SQUARE_HALF_SIDE,
    STAR_INNER_RATIO,
    STAR_OUTER_RADIUS,
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


def _inside(shape: str, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """Whether points (u right, v down, relative to the shape's centre) lie in the shape."""
    if shape == "circle":
        return u * u + v * v <= s * s
    au, av = np.abs(u), np.abs(v)
    if shape == "square":
        h = SQUARE_HALF_SIDE * s
        return (au <= h) & (av <= h)
    if shape == "triangle":
        # apex up; the bounding box (height 1.5 r, base 2 * r * sqrt(3)/2) is centred
        r = TRIANGLE_CIRCUMRADIUS * s
        top, bottom, half_base = -0.75 * r, 0.75 * r, r * np.sqrt(3) / 2
        return (v <= bottom) & (au <= half_base * (v - top) / (bottom - top))
    if shape == "cross":
        e, w = CROSS_HALF_EXTENT * s, CROSS_ARM_HALF_WIDTH * s
        return ((au <= w) & (av <= e)) | ((au <= e) & (av <= w))
    if shape == "star":
        return _inside_star(u, v, STAR_OUTER_RADIUS * s, STAR_INNER_RATIO * STAR_OUTER_RADIUS * s)
    raise ValueError(f"shape={shape!r} is not one of {SHAPES + NEW_SHAPES}")


def _inside_star(u: np.ndarray, v: np.ndarray, outer: float, inner: float) -> np.ndarray:
    """Five-pointed star, one point straight up: fold each point's angle into the half-sector
    between a tip and the next notch, then test it against the tip-to-notch edge."""
    angle = np.mod(np.arctan2(u, -v), 2 * np.pi / 5)  # 0 at a tip, clockwise on screen
    angle = np.minimum(angle, 2 * np.pi / 5 - angle)  # mirror: 0 .. pi/5
    rho = np.hypot(u, v)
    x, y = rho * np.cos(angle), rho * np.sin(angle)
    half = np.pi / 5
    # edge from the tip (outer, 0) to the notch (inner cos, inner sin); the origin side is inside
    nx, ny = inner * np.sin(half), outer - inner * np.cos(half)
    return nx * x + ny * y <= outer * inner * np.sin(half)


def coverage(shape: str, cx: float, cy: float, scale: float, rotation: float = 0.0) -> np.ndarray:
    """Fraction of each pixel the shape covers: float32 (64, 64) in [0, 1].

    Exact point-in-shape tests at the centres of 4x4 subpixels per pixel (pixel i covers
    [i, i+1)), averaged; ``rotation`` is counter-clockwise in degrees about (cx, cy).
    """
    k = SUPERSAMPLE
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    reach = 1.4 * scale + 1.0  # no shape reaches further than 1.375 s from (cx, cy)
    x0, x1 = max(int(cx - reach), 0), min(int(np.ceil(cx + reach)), IMAGE_SIZE)
    y0, y1 = max(int(cy - reach), 0), min(int(np.ceil(cy + reach)), IMAGE_SIZE)
    if x1 <= x0 or y1 <= y0:
        return out
    xs = x0 + (np.arange((x1 - x0) * k, dtype=np.float64) + 0.5) / k - cx
    ys = y0 + (np.arange((y1 - y0) * k, dtype=np.float64) + 0.5) / k - cy
    u, v = np.meshgrid(xs, ys)
    if rotation:
        theta = np.deg2rad(rotation)
        c, sn = np.cos(theta), np.sin(theta)
        # screen y points down, so counter-clockwise on screen is clockwise in (x, y)
        u, v = u * c - v * sn, u * sn + v * c
    hits = _inside(shape, u, v, scale).astype(np.float32)
    out[y0:y1, x0:x1] = hits.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))
    return out


def render(scene: Scene) -> np.ndarray:
    """The scene as a uint8 (64, 64, 3) array, anti-aliased by 4x supersampling."""
    c = coverage(scene.shape, scene.cx, scene.cy, scene.scale, scene.rotation)[:, :, None]
    fg = np.asarray(scene.rgb, dtype=np.float32)
    bg = np.asarray(scene.background_rgb, dtype=np.float32)
    return np.rint(bg + c * (fg - bg)).astype(np.uint8)


def scene_for(named: dict[str, str], rng: np.random.Generator) -> Scene:
    """A scene that shows the attributes ``named`` (as ``parse_prompt`` reads a prompt) and draws
    every other attribute uniformly, as the data set does (background != colour; no hold-out).
    It is what an ideal model of the data would draw for that prompt: the reference against
    which variety and saturation are judged (``steady eval-iterate``)."""
    for key in named:
        if key not in ("shape", "colour", "size", "position", "background"):
            raise ValueError(f"named={named!r}: unknown attribute {key!r}")
    while True:
        attrs = {
            "shape": named.get("shape") or str(rng.choice(SHAPES)),
            "colour": named.get("colour") or str(rng.choice(COLOUR_NAMES)),
            "size": named.get("size") or str(rng.choice(SIZES)),
            "position": named.get("position") or str(rng.choice([p.name for p in POSITIONS])),
            "background": named.get("background") or str(rng.choice(BACKGROUNDS)),
        }
        if attrs["background"] != attrs["colour"]:
            return make_scene(rng, **attrs)
        if "colour" in named and "background" in named:
            raise ValueError(f"named={named!r}: background must differ from colour")


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


def extension_sample(kind: str, seed: int, index: int, drop_prob: float = DEFAULT_DROP_PROB) -> Sample:
    """Sample ``index`` of the extension's data set ``seed``: a scene with the new shape
    (``kind="star"``) or the new colour as the shape's colour (``kind="lime"``), every other
    attribute drawn as the data set draws it; ``kind="base"`` is ``sample(..., holdout=False)``."""
    if kind == "base":
        return sample(seed, index, drop_prob=drop_prob, holdout=False)
    named = {"star": {"shape": "star"}, "lime": {"colour": "lime"}}.get(kind)
    if named is None:
        raise ValueError(f"kind={kind!r} is not one of 'star', 'lime', 'base'")
    rng = np.random.default_rng([seed, index, 7])
    scene = scene_for(named, rng)
    return Sample(image=render(scene), caption=caption(scene, rng, drop_prob), scene=scene)


def extension_scenes(kind: str, seed: int, n: int, drop_prob: float = DEFAULT_DROP_PROB) -> Iterator[Sample]:
    """Samples ``0 .. n-1`` of ``extension_sample(kind, seed, ...)``."""
    for index in range(n):
        yield extension_sample(kind, seed, index, drop_prob)


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
