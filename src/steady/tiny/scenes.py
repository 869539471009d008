"""Vocabulary of the tiny model's synthetic world: shapes, named colours, sizes, grid positions.

A scene is one shape of one named colour on a plain background of another named colour,
e.g. "a small red circle at the top left on a blue background". This module holds:

- the vocabulary and its exact geometry (grid centres, size ranges, shape proportions),
- the ``Scene`` dataclass (attributes plus exact geometry, everything needed to render it),
- the held-out attribute combinations never shown in training (``HOLDOUTS``),
- the caption grammar (``caption``) and the forgiving prompt parser (``parse_prompt``),
- an opt-in extension the embedded model never saw (``NEW_SHAPES``: star, ``NEW_COLOURS``: lime):
  the training data and ``steady eval-tiny`` use ``BASE`` only; the checker reads the extension
  (``EXTENDED``) when a prompt names one of its words (``vocabulary_for``). The LoRA and the
  embedding that teach them: ``steady.tiny.teach``.

Rendering and sampling live in ``steady.tiny.data``; scoring in ``steady.tiny.checker``.
Try it:  python -c "from steady.tiny.scenes import parse_prompt; print(parse_prompt('red circle top left'))"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "position", "background")

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
SIZES: tuple[str, ...] = ("small", "large")


@dataclass(frozen=True)
class NamedColour:
    """A colour name and its canonical sRGB value (scenes jitter it by a few levels)."""

    name: str
    rgb: tuple[int, int, int]


# Chosen so every pair is >= 87 apart in RGB (the jitter moves a colour <= 17), and so the
# names are ones people use for these values. The checker classifies by nearest canonical RGB.
COLOURS: tuple[NamedColour, ...] = (
    NamedColour("red", (220, 40, 40)),
    NamedColour("orange", (245, 140, 20)),
    NamedColour("yellow", (245, 225, 40)),
    NamedColour("green", (40, 170, 60)),
    NamedColour("cyan", (40, 210, 220)),
    NamedColour("blue", (40, 80, 220)),
    NamedColour("purple", (140, 60, 190)),
    NamedColour("pink", (250, 140, 200)),
    NamedColour("brown", (120, 70, 30)),
    NamedColour("white", (245, 245, 245)),
    NamedColour("gray", (128, 128, 128)),
    NamedColour("black", (25, 25, 25)),
)
COLOUR_NAMES: tuple[str, ...] = tuple(c.name for c in COLOURS)
# The extension (opt-in): a shape and a colour the embedded model never saw. Lime is >= 95 from
# every colour above (yellow is the nearest), as the palette's pairs are.
NEW_SHAPES: tuple[str, ...] = ("star",)
NEW_COLOURS: tuple[NamedColour, ...] = (NamedColour("lime", (150, 235, 40)),)
NEW_COLOUR_NAMES: tuple[str, ...] = tuple(c.name for c in NEW_COLOURS)
# Backgrounds come from the same palette; a scene's background never equals its shape colour.
BACKGROUNDS: tuple[str, ...] = COLOUR_NAMES
COLOUR_JITTER = 10  # each RGB channel of a scene's colours moves by at most this much


@dataclass(frozen=True)
class GridCell:
    """One of the 3x3 positions: its caption name and its row/column (0..2)."""

    name: str
    row: int
    col: int


POSITIONS: tuple[GridCell, ...] = (
    GridCell("top left", 0, 0),
    GridCell("top", 0, 1),
    GridCell("top right", 0, 2),
    GridCell("left", 1, 0),
    GridCell("center", 1, 1),
    GridCell("right", 1, 2),
    GridCell("bottom left", 2, 0),
    GridCell("bottom", 2, 1),
    GridCell("bottom right", 2, 2),
)
POSITION_NAMES: tuple[str, ...] = tuple(p.name for p in POSITIONS)

# Geometry, in pixels of the 64x64 image (pixel i covers [i, i+1)).
CELL_CENTRES: tuple[float, float, float] = (15.0, 32.0, 49.0)
CELL_BOUNDARIES: tuple[float, float] = (23.5, 40.5)  # midway between centres
POSITION_JITTER = 2.0  # centre moves by at most this much in x and y
# "scale" s of a scene: a circle has radius s; other shapes are proportioned below so that
# no shape reaches further than 1.05 s from its centre (so >= 2 px clear of the image edge)
# and small/large stay far apart (x1.5 in s, x2.25 in area) for every shape.
SCALE_RANGES: dict[str, tuple[float, float]] = {"small": (5.0, 6.0), "large": (9.0, 10.5)}
SCALE_THRESHOLD = 7.35  # geometric middle of 6.0 and 9.0
SQUARE_HALF_SIDE = 0.9  # half side / s
TRIANGLE_CIRCUMRADIUS = 1.2  # circumradius / s; the triangle points up, bbox centred on (cx, cy)
CROSS_HALF_EXTENT = 1.05  # arm tip distance / s
CROSS_ARM_HALF_WIDTH = 0.4  # arm half width / s
STAR_OUTER_RADIUS = 1.05  # five points, one straight up; tip distance / s
STAR_INNER_RATIO = 0.5  # inner (notch) radius / outer radius: fat points, so a small star survives the VAE
# How far below (cx, cy) each shape's centre of mass lies, per s (the triangle's bbox is centred).
CENTROID_OFFSET: dict[str, float] = {
    "circle": 0.0, "square": 0.0, "triangle": 0.25 * TRIANGLE_CIRCUMRADIUS, "cross": 0.0, "star": 0.0,
}  # fmt: skip
# Area of each shape per s**2 (exact, before anti-aliasing).
SHAPE_AREA_FACTOR: dict[str, float] = {
    "circle": float(np.pi),
    "square": 4 * SQUARE_HALF_SIDE**2,
    "triangle": 3 * np.sqrt(3) / 4 * TRIANGLE_CIRCUMRADIUS**2,
    "cross": 2 * (2 * CROSS_HALF_EXTENT) * (2 * CROSS_ARM_HALF_WIDTH) - (2 * CROSS_ARM_HALF_WIDTH) ** 2,
    "star": 5 * STAR_OUTER_RADIUS**2 * STAR_INNER_RATIO * float(np.sin(np.pi / 5)),
}


@dataclass(frozen=True)
class Vocabulary:
    """The shapes and colours a checker (or a data set) knows."""

    shapes: tuple[str, ...]
    colours: tuple[NamedColour, ...]

    @property
    def colour_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.colours)


BASE = Vocabulary(SHAPES, COLOURS)  # the embedded model's world
EXTENDED = Vocabulary(SHAPES + NEW_SHAPES, COLOURS + NEW_COLOURS)  # plus the star and lime


def vocabulary_for(named: dict[str, str]) -> Vocabulary:
    """``EXTENDED`` when the attributes a prompt names (``parse_prompt``) use the extension, else
    ``BASE``: a prompt of the embedded model's own world is read as it always was."""
    new = set(NEW_SHAPES) | set(NEW_COLOUR_NAMES)
    return EXTENDED if any(named.get(a) in new for a in ("shape", "colour", "background")) else BASE


@dataclass(frozen=True)
class Scene:
    """One shape on a plain background: named attributes plus the exact geometry to render."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    cx: float  # centre, pixels from the left edge
    cy: float  # centre, pixels from the top edge
    scale: float  # s: circle radius; see the *_FACTOR constants for other shapes
    rotation: float  # degrees, counter-clockwise; 0 for every generated scene today
    rgb: tuple[int, int, int]  # jittered shape colour actually drawn
    background_rgb: tuple[int, int, int]  # jittered background colour actually drawn

    def attributes(self) -> dict[str, str]:
        """The five named attributes, keyed as in ``ATTRIBUTES``."""
        return {a: getattr(self, a) for a in ATTRIBUTES}


@dataclass(frozen=True)
class Holdout:
    """An attribute combination never sampled for training, e.g. every green triangle."""

    attributes: tuple[tuple[str, str], ...]  # (attribute, value) pairs that must all match

    def matches(self, attributes: dict[str, str]) -> bool:
        return all(attributes.get(k) == v for k, v in self.attributes)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.attributes)


HOLDOUTS: tuple[Holdout, ...] = (
    Holdout((("colour", "green"), ("shape", "triangle"))),
    Holdout((("colour", "orange"), ("shape", "cross"))),
    Holdout((("shape", "square"), ("position", "bottom right"))),
    Holdout((("size", "large"), ("colour", "pink"))),
)


def is_held_out(attributes: dict[str, str]) -> bool:
    """True when these attributes (a Scene's or a parsed prompt's) hit a held-out combination."""
    return any(h.matches(attributes) for h in HOLDOUTS)


def colour_rgb(name: str) -> tuple[int, int, int]:
    """Canonical RGB of a colour name from ``COLOURS``."""
    for c in COLOURS + NEW_COLOURS:
        if c.name == name:
            return c.rgb
    raise ValueError(f"colour={name!r} is not one of {COLOUR_NAMES + NEW_COLOUR_NAMES}")


def grid_cell(name: str) -> GridCell:
    """The ``GridCell`` called ``name``."""
    for p in POSITIONS:
        if p.name == name:
            return p
    raise ValueError(f"position={name!r} is not one of {POSITION_NAMES}")


def position_from_cell(row: int, col: int) -> str:
    """Name of the grid cell at (row, col)."""
    return POSITIONS[3 * row + col].name


# --- captions -----------------------------------------------------------------------------


def position_phrase(position: str) -> str:
    if position == "center":
        return "in the center"
    if position in ("left", "right"):
        return f"on the {position}"
    return f"at the {position}"


def _with_article(words: list[str]) -> list[str]:
    article = "an" if words and words[0][0] in "aeiou" else "a"
    return [article, *words]


def caption(scene: Scene, rng: np.random.Generator, drop_prob: float = 0.25) -> str:
    """A caption of ``scene``; each of colour, size, position, background is left out with
    probability ``drop_prob`` (independently). The shape is always named.

    Because the generator draws every attribute freely, a caption that leaves one out teaches
    the model to sample it. Three phrasings are used so short prompts also work, e.g.
    "a small red circle at the top left on a blue background", "red circle, top left",
    "a blue background with a small red circle at the top left".
    """
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob={drop_prob!r} must be within [0, 1]")
    keep = {a: bool(rng.random() >= drop_prob) for a in ("colour", "size", "position", "background")}
    noun = [w for a, w in (("size", scene.size), ("colour", scene.colour)) if keep[a]]
    noun.append(scene.shape)
    template = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
    if template == 1:
        parts = [" ".join(noun)]
        if keep["position"]:
            parts.append(scene.position)
        if keep["background"]:
            parts.append(f"{scene.background} background")
        return ", ".join(parts)
    words = _with_article(noun)
    if keep["position"]:
        words.append(position_phrase(scene.position))
    if template == 2 and keep["background"]:
        return " ".join([*_with_article([scene.background]), "background with", *words])
    if keep["background"]:
        words.extend(["on", *_with_article([scene.background]), "background"])
    return " ".join(words)


# --- prompt parsing -------------------------------------------------------------------------

_SHAPE_WORDS = {
    "circle": "circle", "circles": "circle", "disc": "circle", "disk": "circle", "dot": "circle",
    "square": "square", "squares": "square",
    "triangle": "triangle", "triangles": "triangle",
    "cross": "cross", "crosses": "cross", "plus": "cross",
    "star": "star", "stars": "star",
}  # fmt: skip
_SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small",
               "large": "large", "big": "large", "huge": "large"}  # fmt: skip
# "aqua": a word the embedded model never read, for its cyan (the shipped embedding teaches it)
_COLOUR_WORDS = {**{n: n for n in COLOUR_NAMES + NEW_COLOUR_NAMES}, "grey": "gray", "violet": "purple", "aqua": "cyan"}
_VERTICAL_WORDS = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_HORIZONTAL_WORDS = {"left": "left", "right": "right"}
_CENTRE_WORDS = {"center", "centre", "middle", "central", "centered", "centred"}
_BACKGROUND_WORDS = {"background", "backdrop", "bg"}
_SKIP_WORDS = {"a", "an", "the", "colored", "coloured", "plain", "solid"}


def parse_prompt(text: str) -> dict[str, str]:
    """The attributes a prompt names, keyed as in ``ATTRIBUTES``; unknown words are ignored.

    A colour is the background colour when followed by "background" or preceded by "on"
    ("on a blue background", "on blue", "blue background, red circle"); otherwise the first
    other colour is the shape's. Position combines vertical (top/bottom) and horizontal
    (left/right) words; "center"/"middle" alone means the center cell.
    >>> parse_prompt("red circle top left")
    {'shape': 'circle', 'colour': 'red', 'position': 'top left'}
    """
    tokens = re.findall(r"[a-z]+", text.lower())
    found: dict[str, str] = {}
    vertical = horizontal = None
    centre = False
    for i, tok in enumerate(tokens):
        if tok in _SHAPE_WORDS:
            found.setdefault("shape", _SHAPE_WORDS[tok])
        elif tok in _SIZE_WORDS:
            found.setdefault("size", _SIZE_WORDS[tok])
        elif tok in _COLOUR_WORDS:
            after = [t for t in tokens[i + 1 : i + 4] if t not in _SKIP_WORDS][:1]
            before = [t for t in reversed(tokens[max(0, i - 3) : i]) if t not in _SKIP_WORDS][:1]
            if after and after[0] in _BACKGROUND_WORDS or before == ["on"]:
                found.setdefault("background", _COLOUR_WORDS[tok])
            else:
                found.setdefault("colour", _COLOUR_WORDS[tok])
        elif tok in _VERTICAL_WORDS:
            vertical = vertical or _VERTICAL_WORDS[tok]
        elif tok in _HORIZONTAL_WORDS:
            horizontal = horizontal or _HORIZONTAL_WORDS[tok]
        elif tok in _CENTRE_WORDS:
            centre = True
    if vertical or horizontal:
        found["position"] = " ".join(w for w in (vertical, horizontal) if w)
    elif centre:
        found["position"] = "center"
    return {a: found[a] for a in ATTRIBUTES if a in found}
