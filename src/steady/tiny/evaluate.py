"""Prompt-adherence and variety evaluation of the tiny model against the scene ground truth.

``eval_prompts()`` is the fixed evaluation set: full captions of scenes from every held-out
combination (never seen in training) plus scenes the model may have seen. ``score`` turns
(prompt, image) pairs into per-attribute accuracy with the analytic checker, and
``colour_variety`` counts the distinct colours over images of a prompt that names none.
Nothing here imports torch: the images come from any sampler (training loop or the real
pipeline in ``steady eval-tiny``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from steady.tiny.checker import analyse, check
from steady.tiny.data import extension_sample, make_scene, scene_for
from steady.tiny.scenes import (
    BACKGROUNDS,
    COLOUR_NAMES,
    HOLDOUTS,
    POSITION_NAMES,
    SHAPES,
    SIZES,
    caption,
    is_held_out,
)

EVAL_SEED = 20261125
SCORED = ("shape", "colour", "size", "position", "background")
TARGETS = {"colour": 0.90, "position": 0.85, "size": 0.85, "shape": 0.75}
VARIETY_PROMPT = "a circle"
VARIETY_IMAGES = 30
VARIETY_TARGET = 6


@dataclass(frozen=True)
class EvalPrompt:
    prompt: str
    seed: int
    held_out: bool


@dataclass
class EvalReport:
    n_images: int
    accuracy: dict[str, float]  # per attribute, all prompts
    accuracy_held_out: dict[str, float]
    accuracy_seen: dict[str, float]
    mean_score: float
    not_found: int  # images where the checker found no shape at all
    variety_colours: int = 0
    variety_images: int = 0
    variety_values: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def misses(self) -> list[str]:
        """Targets not met, each as 'attribute measured < target'."""
        out = [
            f"{a} {self.accuracy[a]:.1%} < {t:.0%}"
            for a, t in TARGETS.items()
            if self.accuracy[a] < t
        ]
        if self.variety_images and self.variety_colours < VARIETY_TARGET:
            out.append(f"variety {self.variety_colours} colours < {VARIETY_TARGET}")
        return out


def _free_choice(rng: np.random.Generator, values: tuple[str, ...], fixed: str | None) -> str:
    return fixed if fixed is not None else str(rng.choice(values))


def eval_prompts(per_holdout: int = 8, seen: int = 32, seed: int = EVAL_SEED) -> list[EvalPrompt]:
    """Full captions (every attribute named): ``per_holdout`` scenes of each held-out
    combination, then ``seen`` scenes outside them. Deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[EvalPrompt] = []
    for h in HOLDOUTS:
        fixed = dict(h.attributes)
        for _ in range(per_holdout):
            out.append(_prompt_for(rng, fixed, held_out=True))
    out += [_prompt_for(rng, {}, held_out=False) for _ in range(seen)]
    return out


EXTENSION_SETS = ("star", "star-large", "lime", "aqua")


def extension_prompts(kind: str, n: int = 32, seed: int = EVAL_SEED) -> list[EvalPrompt]:
    """Full captions of ``n`` scenes of the extension (``data.extension_sample``): ``star`` (the new
    shape, any size), ``star-large`` (the new shape, large: what the VAE can draw of it), ``lime``
    (the new colour), ``aqua`` (a word the model never read, for the palette's cyan: the shape is cyan
    and the caption says aqua). Deterministic from ``seed``, and apart from the training scenes' seeds."""
    if kind not in EXTENSION_SETS:
        raise ValueError(f"kind={kind!r} is not one of {EXTENSION_SETS}")
    if kind == "aqua":
        rng = np.random.default_rng([seed, 41])
        scenes = [scene_for({"colour": "cyan"}, rng) for _ in range(n)]
        return [EvalPrompt(" ".join("aqua" if w == "cyan" else w for w in caption(s, rng, drop_prob=0.0).split()),
                           int(rng.integers(0, 2**31 - 1)), False) for s in scenes]  # fmt: skip
    out: list[EvalPrompt] = []
    index = 0
    while len(out) < n:
        s = extension_sample(kind.split("-")[0], seed, index, drop_prob=0.0)
        index += 1
        if kind == "star-large" and s.scene.size != "large":
            continue
        out.append(EvalPrompt(s.caption, int(np.random.default_rng([seed, index]).integers(0, 2**31 - 1)), False))
    return out


def _prompt_for(rng: np.random.Generator, fixed: dict[str, str], held_out: bool) -> EvalPrompt:
    while True:
        colour = _free_choice(rng, COLOUR_NAMES, fixed.get("colour"))
        background = str(rng.choice([b for b in BACKGROUNDS if b != colour]))
        attrs = {
            "shape": _free_choice(rng, SHAPES, fixed.get("shape")),
            "colour": colour,
            "size": _free_choice(rng, SIZES, fixed.get("size")),
            "position": _free_choice(rng, POSITION_NAMES, fixed.get("position")),
            "background": background,
        }
        if is_held_out(attrs) == held_out:
            break
    scene = make_scene(rng, **attrs)
    return EvalPrompt(caption(scene, rng, drop_prob=0.0), int(rng.integers(0, 2**31 - 1)), held_out)


def _accuracy(rows: list[dict[str, bool | None]]) -> dict[str, float]:
    acc = {}
    for a in SCORED:
        vals = [bool(r[a]) for r in rows if a in r]
        acc[a] = float(np.mean(vals)) if vals else float("nan")
    return acc


def score(
    prompts: list[EvalPrompt],
    images: list[np.ndarray],
    variety_images: list[np.ndarray] | None = None,
) -> EvalReport:
    """Per-attribute accuracy of ``images[i]`` against ``prompts[i]`` (uint8 HxWx3 arrays)."""
    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
    results = [check(img, p.prompt) for p, img in zip(prompts, images, strict=True)]
    rows = [r.correct for r in results]
    held = [r.correct for r, p in zip(results, prompts, strict=True) if p.held_out]
    seen = [r.correct for r, p in zip(results, prompts, strict=True) if not p.held_out]
    report = EvalReport(
        n_images=len(images),
        accuracy=_accuracy(rows),
        accuracy_held_out=_accuracy(held),
        accuracy_seen=_accuracy(seen),
        mean_score=float(np.mean([r.score for r in results])) if results else float("nan"),
        not_found=sum(1 for r in results if not r.estimate.found),
    )
    if variety_images:
        report.variety_images = len(variety_images)
        report.variety_values = variety(variety_images)
        report.variety_colours = report.variety_values["colour"]
    return report


def variety(images: list[np.ndarray]) -> dict[str, int]:
    """Distinct values the checker reads, per attribute, over ``images``."""
    seen: dict[str, set[str]] = {a: set() for a in SCORED}
    for img in images:
        est = analyse(img).attributes()
        for a in SCORED:
            if est.get(a) is not None:
                seen[a].add(str(est[a]))
    return {a: len(v) for a, v in seen.items()}


def format_report(r: EvalReport) -> str:
    lines = [f"{'attribute':<11} {'all':>7} {'held-out':>9} {'seen':>7} {'target':>7}"]
    for a in SCORED:
        t = f"{TARGETS[a]:.0%}" if a in TARGETS else "-"
        lines.append(
            f"{a:<11} {r.accuracy[a]:>7.1%} {r.accuracy_held_out[a]:>9.1%} "
            f"{r.accuracy_seen[a]:>7.1%} {t:>7}"
        )
    lines.append(f"images {r.n_images}, mean score {r.mean_score:.3f}, no shape found {r.not_found}")
    if r.variety_images:
        vals = ", ".join(f"{a} {n}" for a, n in r.variety_values.items())
        lines.append(
            f"variety over {r.variety_images} x {VARIETY_PROMPT!r}: {vals} distinct "
            f"(colour target >= {VARIETY_TARGET})"
        )
    misses = r.misses()
    lines.append("targets: " + ("all met" if not misses else "MISSED " + "; ".join(misses)))
    return "\n".join(lines)
