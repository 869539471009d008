"""Explore instead of repeat: one run over variants of a prompt or of its settings.

    variants = expand(request, base_seed=1234, wildcards_dir=settings().home / "wildcards")
    # -> one Variant per image: the values that differ from the request (prompt, seed, cfg_scale...)

Two sources of variants, as A1111 users know them:
- Wildcards / dynamic prompts (the `dynamicprompts` library): `a {red|green|blue} circle`,
  `a __colors__ circle` with STEADY_HOME/wildcards/colors.txt (one value per line). Each image of
  the run draws its own prompt, reproducibly from the run's seed.
- An X/Y grid (A1111's "X/Y/Z plot"): `--x "Prompt S/R: red, green, blue" --y "CFG: 3, 5, 7"`.
  Axis kinds: Prompt S/R (the first value is searched in the prompt and replaced by each value,
  itself included), Seed, CFG, Steps, Sampler. Every cell uses the run's seed unless Seed is an
  axis, so a difference between cells is the axis's doing. The cells are saved as ordinary images
  of the run, plus one grid PNG with axis labels (steady.images.grid).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steady.errors import BadInput
from steady.params import MAX_SEED, canonical_sampler

AXIS_KINDS = {"prompt s/r": "prompt", "seed": "seed", "cfg": "cfg_scale", "cfg scale": "cfg_scale", "steps": "steps",
              "sampler": "sampler"}  # fmt: skip
_DYNAMIC = re.compile(r"\{[^{}]*\|[^{}]*\}|__[\w./-]+__")
_WILDCARD = re.compile(r"__([\w./-]+)__")


@dataclass
class Axis:
    kind: str  # a GenerationRequest field: prompt, seed, cfg_scale, steps or sampler
    label: str  # as the user wrote it, for the grid
    values: list[Any]
    texts: list[str]  # the values as written, for the grid's labels

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "values": self.values, "texts": self.texts}


@dataclass
class Variant:
    """What one image of the run changes against the request, and where it sits in a grid."""

    overrides: dict[str, Any] = field(default_factory=dict)
    x: int | None = None
    y: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"overrides": self.overrides, "x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        return cls(dict(data.get("overrides", {})), data.get("x"), data.get("y"))


def has_dynamic_syntax(prompt: str) -> bool:
    return bool(_DYNAMIC.search(prompt))


def parse_axis(text: str, argument: str, prompt: str) -> Axis:
    """'CFG: 3, 5, 7' -> Axis; BadInput naming `argument` when it cannot be used."""
    kind_text, sep, rest = text.partition(":")
    kind = AXIS_KINDS.get(kind_text.strip().lower())
    if not sep or kind is None:
        raise BadInput(argument, text, "must look like 'KIND: v1, v2, ...' with KIND one of Prompt S/R, Seed, CFG, "
                                       "Steps, Sampler")  # fmt: skip
    texts = [v.strip() for v in rest.split(",") if v.strip()]
    if not texts:
        raise BadInput(argument, text, "has no values")
    values: list[Any] = []
    for value in texts:
        try:
            if kind == "seed":
                values.append(int(value))
                if not 0 <= values[-1] <= MAX_SEED:
                    raise ValueError
            elif kind == "steps":
                values.append(int(value))
                if not 1 <= values[-1] <= 150:
                    raise ValueError
            elif kind == "cfg_scale":
                values.append(float(value))
                if not 0 <= values[-1] <= 30:
                    raise ValueError
            elif kind == "sampler":
                values.append(canonical_sampler(value))
            else:
                values.append(value)
        except (ValueError, BadInput) as exc:  # BadInput: canonical_sampler's, which names `sampler`
            why = f" ({exc.why})" if isinstance(exc, BadInput) else ""
            raise BadInput(argument, text, f"value {value!r} is not a valid {kind_text.strip()}{why}") from exc
    if kind == "prompt" and texts[0] not in prompt:
        raise BadInput(argument, text, f"Prompt S/R searches for its first value {texts[0]!r}, which is not in the prompt")
    return Axis(kind, kind_text.strip(), values, texts)


def expand(request: Any, base_seed: int, wildcards_dir: Path) -> list[Variant]:
    """The variants of a checked request: [] when every image is the request with seed base+i."""
    axes = axes_of(request)
    if axes:
        return _grid(request, base_seed, axes)
    if has_dynamic_syntax(request.prompt):
        return [Variant({"prompt": p}) for p in dynamic_prompts(request.prompt, request.n_images, base_seed, wildcards_dir)]
    return []


def axes_of(request: Any) -> list[Axis]:
    return [parse_axis(text, name, request.prompt) for name, text in (("x", request.x_axis), ("y", request.y_axis))
            if text]  # fmt: skip


def _grid(request: Any, base_seed: int, axes: list[Axis]) -> list[Variant]:
    x_axis = axes[0]
    y_axis = axes[1] if len(axes) > 1 else None
    cells = len(x_axis.values) * (len(y_axis.values) if y_axis else 1)
    if cells > request.max_images:
        raise BadInput("x", request.x_axis, f"the grid has {cells} cells, more than the cap of {request.max_images} "
                                            "images per run (raise it with --max-images)")  # fmt: skip
    variants = []
    ys = range(len(y_axis.values)) if y_axis else [None]
    for y, x in itertools.product(ys, range(len(x_axis.values))):
        overrides: dict[str, Any] = {"seed": base_seed}
        for axis, i in ((x_axis, x), (y_axis, y)):
            if axis is None or i is None:
                continue
            if axis.kind == "prompt":
                prompt = overrides.get("prompt", request.prompt)
                overrides["prompt"] = prompt.replace(axis.texts[0], axis.values[i])
            else:
                overrides[axis.kind] = axis.values[i]
        variants.append(Variant(overrides, x, y))
    return variants


def dynamic_prompts(template: str, n: int, seed: int, wildcards_dir: Path) -> list[str]:
    """`n` prompts drawn from a dynamic-prompts template, reproducibly from `seed`."""
    from dynamicprompts.generators import RandomPromptGenerator
    from dynamicprompts.wildcards.wildcard_manager import WildcardManager

    for name in _WILDCARD.findall(template):
        if not any(wildcards_dir.glob(f"{name}.*")):
            raise BadInput("prompt", template, f"uses the wildcard __{name}__, but there is no {name}.txt in "
                                               f"{wildcards_dir}")  # fmt: skip
    try:
        prompts = RandomPromptGenerator(WildcardManager(wildcards_dir), seed=seed).generate(template, num_images=n)
    except Exception as exc:  # the library's parse errors have no common base class
        raise BadInput("prompt", template, f"is not a valid dynamic prompt ({exc})") from exc
    return [str(p) for p in prompts]
