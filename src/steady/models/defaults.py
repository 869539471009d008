"""A model's own recommended settings: a defaults file beside it, or what its file says it is.

Where a checkpoint's or a LoRA's settings come from, first found first:

1. a defaults file beside it: ``<name>.defaults.toml`` (or ``.json``) next to a ``<name>.safetensors``
   file or a ``<name>`` diffusers folder, or ``defaults.toml`` inside the folder (the embedded
   model ships its own there, with its weights). Keys: ``steps``, ``cfg_scale``, ``sampler``,
   ``schedule_type``, ``width``, ``height``, ``clip_skip``, each checked against the parameter
   table; a bad file is refused naming the file and the key;
2. a ``steady.defaults`` entry in a safetensors file's metadata (a JSON object of the same keys);
3. what the file says it is: a few-step model (LCM, TCD, Turbo, Lightning, Hyper-SD) named in its
   metadata (``modelspec.title``/``description``/``usage_hint``, kohya's ``ss_output_name``/
   ``ss_training_comment``, a diffusers folder's ``LCMScheduler``/``TCDScheduler``) or in its file
   name, with the settings its makers publish (steps, CFG, sampler);
4. a LoRA file that says nothing of itself but whose tensors have LCM-LoRA's layer set (UNet only,
   every attention, feed-forward, resnet, time-embedding and resampler layer, one rank; the rule
   and what it cannot tell apart: steady.models.lorakeys): LCM's settings.

The user's own values always win: these fill only what a request left out. Torch-free (header
reads only).
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.errors import BadInput, ModelError
from steady.params import GenerationRequest, canonical_sampler, with_schedule

KEYS = ("steps", "cfg_scale", "sampler", "schedule_type", "width", "height", "clip_skip")
METADATA_KEY = "steady.defaults"  # a JSON object of KEYS in a safetensors file's metadata
# Metadata a trainer fills with what the model is (kohya sd-scripts, the Stability modelspec).
_NAME_KEYS = ("modelspec.title", "modelspec.description", "modelspec.usage_hint", "modelspec.tags",
              "ss_output_name", "ss_training_comment")  # fmt: skip
_STEPS = re.compile(r"(?<!\d)(\d{1,2})[-_ ]?steps?(?![a-z])")


@dataclass(frozen=True)
class ModelDefaults:
    """Recommended values for what a request leaves out (None: no recommendation)."""

    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str | None = None
    width: int | None = None
    height: int | None = None
    clip_skip: int | None = None
    kind: str = ""  # 'LCM' | 'TCD' | 'Turbo' | 'Lightning' | 'Hyper-SD' | '' (not a few-step model)
    source: str = ""  # where they come from, for the note a user reads

    def values(self) -> dict[str, Any]:
        """The recommended values, by GenerationRequest field name."""
        return {k: v for k in ("steps", "cfg_scale", "sampler", "width", "height", "clip_skip")
                if (v := getattr(self, k)) is not None}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _few_step(kind: str, name: str) -> ModelDefaults:
    """The settings a few-step family's makers publish; the step count from the name when it has one
    ("sdxl_lightning_4step", "Hyper-SD15-8steps")."""
    found = _STEPS.search(name)
    steps = int(found.group(1)) if found else None
    if kind == "LCM":
        return ModelDefaults(steps=steps or 4, cfg_scale=1.5, sampler="LCM", kind=kind)
    if kind == "TCD":
        return ModelDefaults(steps=steps or 4, cfg_scale=1.0, sampler="TCD", kind=kind)
    if kind == "Turbo":
        return ModelDefaults(steps=steps or 4, cfg_scale=1.0, sampler="Euler a SGM Uniform", kind=kind)
    if kind == "Lightning":
        return ModelDefaults(steps=steps or 4, cfg_scale=1.0, sampler="Euler SGM Uniform", kind=kind)
    # Hyper-SD: its "CFG" LoRAs keep guidance (5-8), the others are sampled without it.
    cfg = 5.0 if re.search(r"\bcfg\b|[-_]cfg[-_.]", name) else 1.0
    return ModelDefaults(steps=steps or 8, cfg_scale=cfg, sampler="Euler SGM Uniform", kind=kind)


def few_step_kind(text: str) -> str:
    """The few-step family a name or a metadata text names, or ""."""
    t = text.lower()
    for kind, pattern in (("Hyper-SD", r"hyper[-_ ]?sd"), ("Lightning", r"lightning"), ("Turbo", r"turbo"),
                          ("TCD", r"(?<![a-z])tcd(?![a-z])"),
                          ("LCM", r"(?<![a-z])lcm(?![a-z])|latent[-_ ]consistency")):  # fmt: skip
        if re.search(pattern, t):
            return kind
    return ""


def defaults_file(model: Path) -> Path | None:
    """The defaults file of a checkpoint, a diffusers folder or a LoRA, or None."""
    beside = [model.with_name(model.stem + ".defaults" + ext) for ext in (".toml", ".json")]
    if model.is_dir():
        beside = [model.with_name(model.name + ".defaults" + ext) for ext in (".toml", ".json")]
        beside += [model / "defaults.toml", model / "defaults.json"]
    return next((p for p in beside if p.is_file()), None)


def read_defaults_file(path: Path) -> ModelDefaults:
    """A defaults file, each value checked against the parameter table (ModelError naming the file
    and the key when one is wrong)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ModelError("model", str(path), f"cannot read this defaults file: {exc}") from exc
    return _checked(data, str(path))


def _checked(data: Any, where: str) -> ModelDefaults:
    if not isinstance(data, dict):
        raise ModelError("model", where, "defaults must be a table of " + ", ".join(KEYS))
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ModelError("model", where, f"unknown key {unknown[0]!r}; the keys are " + ", ".join(KEYS))
    values: dict[str, Any] = {}
    try:
        for key, value in data.items():
            if key == "schedule_type":
                continue
            field = GenerationRequest(prompt="x", **{key: value}).validate()  # the table's bounds and types
            values[key] = getattr(field, key)
        if "schedule_type" in data:
            values["sampler"] = with_schedule(values.get("sampler") or canonical_sampler("Euler a"),
                                              str(data["schedule_type"]))  # fmt: skip
    except BadInput as exc:
        raise ModelError("model", where, f"{exc.argument} = {exc.value!r} {exc.why}") from exc
    if "cfg_scale" in values:
        values["cfg_scale"] = float(values["cfg_scale"])
    return ModelDefaults(**values, source=where)


def metadata_defaults(metadata: dict[str, Any], name: str, where: str) -> ModelDefaults | None:
    """Recommended settings from a safetensors file's metadata and its name, or None."""
    if METADATA_KEY in metadata:
        try:
            data = json.loads(str(metadata[METADATA_KEY]))
        except ValueError as exc:
            raise ModelError("model", where, f"its {METADATA_KEY} metadata is not JSON: {exc}") from exc
        return dataclasses.replace(_checked(data, where), source=f"{Path(where).name} ({METADATA_KEY} metadata)")
    for key in _NAME_KEYS:
        text = str(metadata.get(key, "") or "")
        if kind := few_step_kind(text):
            return dataclasses.replace(_few_step(kind, text.lower()), source=f"{Path(where).name} ({key}: {text[:60]!r})")
    if kind := few_step_kind(name):
        return dataclasses.replace(_few_step(kind, name.lower()), source=f"{Path(where).name} (its name)")
    return None


def _header(path: Path) -> dict[str, Any]:
    from steady.models.detect import read_safetensors_header

    return read_safetensors_header(path) if path.suffix.lower() == ".safetensors" else {}


def _metadata(header: dict[str, Any]) -> dict[str, Any]:
    meta = header.get("__metadata__")
    return meta if isinstance(meta, dict) else {}


def layout_defaults(header: dict[str, Any], name: str, where: str) -> ModelDefaults | None:
    """LCM's settings for a LoRA whose tensors have LCM-LoRA's layer set (steady.models.lorakeys), or None."""
    from steady.models.lorakeys import consistency_layout

    if not consistency_layout(header):
        return None
    return dataclasses.replace(_few_step("LCM", name.lower()), source=f"{Path(where).name} (its layers: LCM-LoRA's "
                               "UNet-only set at one rank)")  # fmt: skip


def _folder_scheduler(folder: Path) -> str:
    try:
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(config.get("_class_name", "")) if isinstance(config, dict) else ""


def model_defaults(path: str | Path, name: str = "") -> ModelDefaults | None:
    """The recommended settings of a checkpoint file, a diffusers folder or a LoRA file, or None."""
    p = Path(path)
    found = defaults_file(p)
    if found is not None:
        return read_defaults_file(found)
    if p.is_dir():
        scheduler = _folder_scheduler(p)
        kind = {"LCMScheduler": "LCM", "TCDScheduler": "TCD"}.get(scheduler, "")
        if kind:
            return dataclasses.replace(_few_step(kind, p.name.lower()), source=f"{p.name} (its {scheduler})")
        return metadata_defaults({}, name or p.name, str(p))
    header = _header(p)
    return metadata_defaults(_metadata(header), name or p.stem, str(p)) or layout_defaults(header, name or p.stem, str(p))


def describe(defaults: ModelDefaults, applied: dict[str, Any]) -> str:
    """One line a user reads: which values came from where."""
    what = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in applied.items())
    kind = f"a {defaults.kind} few-step model; " if defaults.kind else ""
    return f"{what} from {defaults.source} ({kind}give them to override)"
