"""Analytic attribute checker: reads shape, colour, size, position and background off a
64x64 image of the tiny model's world and scores it against a prompt. No learned parts.

How it reads an image (``analyse``):
 1. background = median colour of the 2-pixel border;
 2. foreground colour = median of the pixels farthest from the background;
 3. soft mask = each pixel's position between background and foreground colour (0..1),
    keeping only the largest connected blob (generated images can have specks);
 4. shape = the ideal shape (rendered at the mask's centre of mass with the scale its area
    implies, also softened by a little blur) that differs least from the mask, or None when
    even the best differs by more than MAX_SHAPE_ERROR; size = that scale against a
    threshold (None when far outside the data's range); position = grid cell of the fitted
    shape's centre; colour / background = nearest named colour.
An image with no clear foreground gets ``found=False`` and every shape-related guess None;
nothing here raises on a bad generation, only on a wrongly shaped array.

The vocabulary is the embedded model's (``scenes.BASE``) unless asked otherwise: ``check`` reads
with ``scenes.EXTENDED`` (the star, lime) only when the prompt names one of its words, so every
other prompt is read exactly as before the extension.

Try it:  python -m steady.tiny.checker --seed 1 -n 2000   (accuracy on ground-truth scenes)
         python -m steady.tiny.checker --extended star    (on star scenes, with the extension)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from steady.tiny.data import coverage, dataset, extension_scenes
from steady.tiny.scenes import (
    ATTRIBUTES,
    BASE,
    CELL_BOUNDARIES,
    CENTROID_OFFSET,
    EXTENDED,
    IMAGE_SIZE,
    SCALE_THRESHOLD,
    SHAPE_AREA_FACTOR,
    Vocabulary,
    parse_prompt,
    position_from_cell,
    vocabulary_for,
)

BORDER = 2
MIN_CONTRAST = 40.0  # RGB distance below which nothing is considered foreground
MIN_AREA = 8.0  # pixels; smaller blobs are noise
RIM = 2  # pixels of soft edge kept around the thresholded blob
TEMPLATE_BLURS: tuple[float, ...] = (0.0, 0.8, 1.4)  # Gaussian sigmas tried on each ideal shape
# Ground truth fits with error <= 0.13 (<= 0.23 blurred + noisy); worse than this is no shape.
MAX_SHAPE_ERROR = 0.45
# Fitted scales outside these bounds are neither small nor large (the data spans 5.0 .. 10.5).
SCALE_LIMITS: tuple[float, float] = (3.0, 16.0)


@dataclass(frozen=True)
class SceneEstimate:
    """What the checker reads off an image. Attribute fields are None when not determinable."""

    found: bool  # a foreground object was found
    shape: str | None
    colour: str | None
    size: str | None
    position: str | None
    background: str | None
    rgb: tuple[float, float, float] | None  # median foreground colour
    background_rgb: tuple[float, float, float]
    area: float  # soft area in pixels (0 when nothing found)
    cx: float | None  # centre of the fitted shape (its bounding box), pixels
    cy: float | None
    scale: float | None  # fitted s (see scenes.SCALE_RANGES)
    shape_errors: dict[str, float] | None  # per shape: sum |mask - ideal shape| / area

    def attributes(self) -> dict[str, str | None]:
        return {a: getattr(self, a) for a in ATTRIBUTES}


@dataclass(frozen=True)
class CheckResult:
    """An image scored against a prompt.

    ``expected`` holds the attributes the prompt names; ``correct[a]`` is True/False for those
    and None for attributes the prompt leaves free. ``score`` is the fraction of named
    attributes that are correct (1.0 when the prompt names none; ``n_checked`` says so).
    """

    estimate: SceneEstimate
    expected: dict[str, str]
    correct: dict[str, bool | None] = field(default_factory=dict)
    score: float = 1.0
    n_checked: int = 0


@dataclass(frozen=True)
class ShapeFit:
    """The ideal shape that best explains a mask, where it sits, and every shape's misfit."""

    shape: str
    cx: float
    cy: float
    scale: float
    errors: dict[str, float]


def nearest_colour(rgb: np.ndarray, vocabulary: Vocabulary = BASE) -> str:
    """Name of the palette colour nearest to ``rgb`` (Euclidean in sRGB)."""
    palette = np.array([c.rgb for c in vocabulary.colours], dtype=np.float64)
    d = np.linalg.norm(palette - np.asarray(rgb, dtype=np.float64)[None, :], axis=1)
    return vocabulary.colour_names[int(np.argmin(d))]


def _to_float_rgb(image: object) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"image shape={arr.shape!r}; expected (H, W, 3)")
    arr = arr[:, :, :3].astype(np.float64)
    if arr.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"image size={arr.shape[:2]!r}; expected ({IMAGE_SIZE}, {IMAGE_SIZE})")
    if np.issubdtype(np.asarray(image).dtype, np.floating) and arr.max() <= 1.0:
        arr = arr * 255.0  # floats in [0, 1]
    return arr


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Grow a boolean mask by ``steps`` pixels (3x3 square structuring element)."""
    grown = mask.copy()
    for _ in range(steps):
        step = grown.copy()
        step[1:] |= grown[:-1]
        step[:-1] |= grown[1:]
        grown = step.copy()
        grown[:, 1:] |= step[:, :-1]
        grown[:, :-1] |= step[:, 1:]
    return grown


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (iterative flood fill)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    h, w = mask.shape
    best_label, best_size, current = 0, 0, 0
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        stack, size = [(int(y0), int(x0))], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = current
                        stack.append((ny, nx))
        if size > best_size:
            best_label, best_size = current, size
    return labels == best_label if best_label else np.zeros_like(mask)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array as two small matrix products (edge-normalised)."""
    idx = np.arange(image.shape[0], dtype=np.float64)
    kernel = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2)
    kernel /= kernel.sum(axis=1, keepdims=True)
    return kernel @ image @ kernel.T


def fit_shapes(weight: np.ndarray, shapes: tuple[str, ...] = BASE.shapes) -> ShapeFit:
    """Compare a soft mask with each ideal shape of the same area and centre of mass."""
    area = float(weight.sum())
    gy, gx = np.mgrid[0 : weight.shape[0], 0 : weight.shape[1]] + 0.5
    mx, my = float((weight * gx).sum() / area), float((weight * gy).sum() / area)
    errors: dict[str, float] = {}
    geometry: dict[str, tuple[float, float, float]] = {}
    for shape in shapes:
        scale = float(np.sqrt(area / SHAPE_AREA_FACTOR[shape]))
        cy = my - CENTROID_OFFSET[shape] * scale
        ideal = coverage(shape, mx, cy, scale)
        # a decoder softens edges: also compare with softened versions of the ideal shape
        errors[shape] = min(
            float(np.abs(weight - (_blur(ideal, sigma) if sigma else ideal)).sum() / area)
            for sigma in TEMPLATE_BLURS
        )
        geometry[shape] = (mx, cy, scale)
    best = min(errors, key=errors.__getitem__)
    cx, cy, scale = geometry[best]
    return ShapeFit(shape=best, cx=cx, cy=cy, scale=scale, errors=errors)


def _cell(v: float) -> int:
    return 0 if v < CELL_BOUNDARIES[0] else (1 if v < CELL_BOUNDARIES[1] else 2)


def analyse(image: object, vocabulary: Vocabulary = BASE) -> SceneEstimate:
    """Read the scene attributes off an (64, 64, 3) image (uint8, or float in [0, 1]), naming
    only the shapes and colours of ``vocabulary``."""
    img = _to_float_rgb(image)
    # 1. background: median of the border
    border = np.concatenate([img[:BORDER].reshape(-1, 3), img[-BORDER:].reshape(-1, 3),
                             img[:, :BORDER].reshape(-1, 3), img[:, -BORDER:].reshape(-1, 3)])  # fmt: skip
    bg = np.median(border, axis=0)
    background = nearest_colour(bg, vocabulary)
    none = SceneEstimate(found=False, shape=None, colour=None, size=None, position=None,
                         background=background, rgb=None, background_rgb=tuple(bg), area=0.0,
                         cx=None, cy=None, scale=None, shape_errors=None)  # fmt: skip
    dist = np.linalg.norm(img - bg, axis=2)
    dmax = float(dist.max())
    if dmax < MIN_CONTRAST:
        return none
    # 2. foreground colour: median of the farther half of the clearly-foreground pixels
    rough = dist > 0.5 * dmax
    core = rough & (dist >= np.median(dist[rough]))
    fg = np.median(img[core], axis=0)
    axis = fg - bg
    contrast = float(np.dot(axis, axis))
    if contrast < MIN_CONTRAST**2:
        return none
    # 3. soft mask: projection of each pixel onto the background->foreground segment
    weight = np.clip(((img - bg) @ axis) / contrast, 0.0, 1.0)
    blob = _largest_component(weight >= 0.5)
    # keep the soft rim of the blob (anti-aliasing, decoder blur) but not distant specks
    weight = np.where(_dilate(blob, RIM), weight, 0.0)
    area = float(weight.sum())
    if area < MIN_AREA:
        return none
    # 4. attributes
    fit = fit_shapes(weight, vocabulary.shapes)
    size = None
    if SCALE_LIMITS[0] <= fit.scale <= SCALE_LIMITS[1]:
        size = "large" if fit.scale > SCALE_THRESHOLD else "small"
    return SceneEstimate(
        found=True,
        shape=fit.shape if fit.errors[fit.shape] <= MAX_SHAPE_ERROR else None,
        colour=nearest_colour(fg, vocabulary),
        size=size,
        position=position_from_cell(_cell(fit.cy), _cell(fit.cx)),
        background=background,
        rgb=(float(fg[0]), float(fg[1]), float(fg[2])),
        background_rgb=(float(bg[0]), float(bg[1]), float(bg[2])),
        area=area,
        cx=fit.cx,
        cy=fit.cy,
        scale=fit.scale,
        shape_errors=fit.errors,
    )


def score(estimate: SceneEstimate, expected: dict[str, str]) -> CheckResult:
    """Compare an estimate with the attributes a prompt names."""
    got = estimate.attributes()
    correct: dict[str, bool | None] = {
        a: (got[a] == expected[a]) if a in expected else None for a in ATTRIBUTES
    }
    checked = [v for v in correct.values() if v is not None]
    return CheckResult(
        estimate=estimate,
        expected=dict(expected),
        correct=correct,
        score=(sum(checked) / len(checked)) if checked else 1.0,
        n_checked=len(checked),
    )


def check(image: object, prompt: str, vocabulary: Vocabulary | None = None) -> CheckResult:
    """Score an image against a prompt: each attribute the prompt names is read off the image,
    with ``vocabulary`` (default: the extended one when the prompt names its words, else the base)."""
    named = parse_prompt(prompt)
    return score(analyse(image, vocabulary or vocabulary_for(named)), named)


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(description="Checker accuracy on ground-truth scenes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--extended", choices=("star", "lime", "base"), default=None,
                        help="read with the extended vocabulary, on scenes of the star, of lime, or the base world's")
    args = parser.parse_args(argv)
    hits = dict.fromkeys(ATTRIBUTES, 0)
    vocabulary = EXTENDED if args.extended else BASE
    for s in extension_scenes(args.extended, args.seed, args.n) if args.extended else dataset(args.seed, args.n, holdout=False):
        got = analyse(s.image, vocabulary).attributes()
        for a in ATTRIBUTES:
            hits[a] += got[a] == getattr(s.scene, a)
    for a in ATTRIBUTES:
        print(f"{a:10s} {hits[a] / args.n:.4f}")


if __name__ == "__main__":
    main()
