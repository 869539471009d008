"""Fill what a request left out from its model's and its LoRAs' recommendations. Torch-free.

For each of steps, CFG, sampler, width, height and clip skip that the user did not give, first
found first: a few-step LoRA named in the prompt (LCM-LoRA, TCD, Lightning, Hyper-SD: its
defaults file, its metadata or its name, steady.models.defaults), the checkpoint's own defaults
(its defaults file, or what its file says it is), then the built-in defaults (A1111's: 20 steps,
CFG 7, Euler a; the model's native size). A value the user gave is never changed. Values that
came from a few-step model or LoRA, or from a defaults file beside a user's checkpoint, are named
in a note the run's images record with their warnings, so the user sees why a run has 4 steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.params import DEFAULT_CFG_SCALE, DEFAULT_SAMPLER, DEFAULT_STEPS, GenerationRequest, with_schedule

FIELDS = ("steps", "cfg_scale", "sampler", "width", "height", "clip_skip")


@dataclass(frozen=True)
class Filled:
    """The request with every left-out value filled in, and the notes that say where from."""

    request: GenerationRequest
    notes: tuple[str, ...] = ()


def fill(request: GenerationRequest, model_path: Path, size: tuple[int | None, int | None], embedded: bool,
         lora_paths: list[str], given: set[str] | None = None) -> Filled:  # fmt: skip
    """``request`` (validated) with its left-out values filled in. ``size``: the built-in width and
    height (the init image's, or the model's native size). ``given``: the fields the user set
    (default: those not None; clip skip counts as given when it is not 1, as its table default is 1)."""
    from steady.models.defaults import describe, model_defaults

    if given is None:
        given = {f for f in FIELDS if getattr(request, f) is not None}
        if request.clip_skip == 1:
            given.discard("clip_skip")
    # A LoRA says what it needs only by a defaults file, its steady.defaults metadata, or being a
    # few-step LoRA (model_defaults is None otherwise).
    sources = [d for path in lora_paths if (d := model_defaults(path)) is not None]
    own = model_defaults(model_path)
    if own is not None:
        sources.append(own)
    values: dict[str, Any] = {}
    notes: list[str] = []
    for source in sources:
        applied = {k: v for k, v in source.values().items() if k not in given and k not in values}
        values.update(applied)
        if applied and not (embedded and source is own):
            notes.append("defaults: " + describe(source, applied))
    builtin = {"steps": DEFAULT_STEPS, "cfg_scale": DEFAULT_CFG_SCALE, "sampler": DEFAULT_SAMPLER,
               "width": size[0], "height": size[1]}  # fmt: skip
    out = {f: values.get(f, builtin.get(f)) for f in FIELDS if f not in given and (f in values or f in builtin)}
    if "sampler" in out and request.schedule_type != "Automatic":  # the user's Schedule type on the model's sampler
        out["sampler"] = with_schedule(out["sampler"], request.schedule_type)
    if "cfg_scale" in out:
        out["cfg_scale"] = float(out["cfg_scale"])
    return Filled(dataclasses.replace(request, **out, schedule_type="Automatic"), tuple(notes))
