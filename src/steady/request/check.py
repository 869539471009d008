"""Check a request: everything that can be refused is refused here, before anything is written
or any process starts. Torch-free.

    resolved = check(GenerationRequest("a red circle", n_images=4), settings())
    resolved.request.cfg_scale      # the model's default filled in (steady.request.defaults)
    resolved.image_params(1)        # what image 1 is made with (seed base + 1, its variant's prompt)

``check`` returns a new, frozen ``Resolved``: the validated request with every model default
filled in once (CFG, size, the seed drawn), the model file found and inspected, the device and
dtype chosen, the output folder proven writable, the run's variants (wildcards, X/Y grid)
expanded, each prompt's LoRA tags resolved to files (steady.models.loras): a name that is not
there is refused with the closest names, and the embeddings its words name found
(steady.models.embeddings); a LoRA or an embedding that does not fit the model is skipped with a
warning that each image records (``ImageParams.extra["warnings"]``). Nothing downstream changes
it; the memory plan (steady.request.plan) makes a new one.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steady.config import Settings
from steady.errors import BadInput, OutputError
from steady.params import GenerationRequest, Hires, ImageParams, Source, resolve_seed
from steady.prompts.lora import strip_lora_tags
from steady.prompts.schedule import check_prompt
from steady.prompts.variants import Axis, Variant, axes_of, expand
from steady.request.defaults import fill
from steady.version import __version__

# Free disk space we insist on beyond the images themselves: a full disk mid-run is the one
# failure that can take other programs down with us.
DISK_RESERVE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ModelChoice:
    """The model file a request resolved to."""

    path: Path
    name: str
    hash: str  # A1111 short hash
    arch: str
    info: Any  # steady.models.detect.ModelInfo


@dataclass(frozen=True)
class Resolved:
    """A checked request: every value concrete, ready to plan and queue."""

    request: GenerationRequest  # validated; cfg_scale, width, height and seed filled in
    model: ModelChoice
    device: str
    dtype: str
    out_dir: Path
    variants: tuple[Variant, ...] = ()  # one per image when the run has wildcards or a grid
    axes: tuple[Axis, ...] = ()
    memory: Any = None  # steady.request.planner.Plan, once steady.request.plan has made one
    extra: dict[str, Any] = field(default_factory=dict)  # the request prompt's LoRAs and warnings, for every image
    source: Source | None = None  # img2img / inpainting: the stored init image and mask (steady.request.source)
    hires: Hires | None = None  # hires fix: the second pass (steady.request.hires)

    def base_params(self) -> ImageParams:
        """The run's parameters before its variants: image 0's seed (the run's base seed). Every
        field ImageParams shares with the request comes from the resolved request, so a new row
        of the parameter table is recorded with every image as soon as ImageParams has it."""
        r = self.request
        shared = {f.name: getattr(r, f.name) for f in dataclasses.fields(ImageParams) if hasattr(r, f.name)}
        return ImageParams(**{
            **shared, "cfg_scale": float(r.cfg_scale), "model_name": self.model.name, "model_hash": self.model.hash,
            "model_arch": self.model.arch, "device": self.device, "dtype": self.dtype, "steady_version": __version__,
            "extra": _extra(r.allow_pickle, self.extra), "source": self.source, "hires": self.hires,
        })  # fmt: skip

    def warnings(self) -> list[str]:
        """What the run's images will record as warnings (LoRAs skipped, options ignored), once each."""
        extras = [self.extra, *(v.overrides.get("extra", {}) for v in self.variants)]
        return list(dict.fromkeys(line for extra in extras for line in extra.get("warnings", [])))

    def image_params(self, index: int) -> ImageParams:
        """What image ``index`` of the run is made with: seed base + index, then its variant."""
        overrides = self.variants[index].overrides if self.variants else {}
        return dataclasses.replace(self.base_params(), **{"seed": (self.request.seed + index) % 2**32, **overrides})


def check(request: GenerationRequest, cfg: Settings, variants: tuple[Variant, ...] | None = None) -> Resolved:
    """Validate ``request`` and resolve it against its model and this machine.

    ``variants``: per-image overrides given by the caller (eval commands render many prompts in
    one run); by default they come from the prompt's wildcards and the X/Y axes."""
    from steady.models.default import EMBEDDED_MODEL_NAME, embedded_model_path, resolve_default_model
    from steady.models.detect import clip_skip_limit, inspect_model, pickle_refusal, text_layers
    from steady.models.hashing import short_hash
    from steady.models.resolve import find_model
    from steady.request.devices import choose_backend, choose_device, choose_dtype, native_bf16

    # The values themselves, against the parameter table.
    request = request.validate()
    # A1111 styles, into the prompt text before anything else reads it (steady.prompts.styles).
    request, styles = _styled(request, cfg)
    # The model: found, inspected (format, architecture, native size, text encoder layers), its defaults.
    model_path = find_model(request.model, cfg) if request.model else resolve_default_model(cfg)
    info = inspect_model(model_path)
    embedded = Path(model_path) == embedded_model_path()
    if embedded:
        info = dataclasses.replace(info, name=EMBEDDED_MODEL_NAME)
    if info.format == "pickle" and not request.allow_pickle:
        raise pickle_refusal(info)
    skip_limit = clip_skip_limit(info)  # the table's bound is SD 1.x's 12 layers; the model's own is this
    if skip_limit is not None and request.clip_skip > skip_limit:
        raise BadInput("clip_skip", request.clip_skip, f"must be between 1 and {skip_limit} for {info.name} (its "
                                                       f"text encoder has {text_layers(info)} layers)")  # fmt: skip
    # Device and dtype, decided without torch (the worker confirms the device when it loads).
    device = choose_device(request.device)
    dtype = choose_dtype(request.dtype, device, native_bf16())
    # What runs the UNet: the request's backend, else config.toml's (steady.worker.openvino_unet).
    backend = choose_backend(request.backend or cfg.backend, device, "" if request.backend else str(cfg.config_path))
    request = dataclasses.replace(request, backend=backend)
    # The scorer setting (a CLIP folder must exist), the seed, the variants.
    if cfg.scorer != "model" and not Path(cfg.scorer).is_dir():
        raise BadInput("scorer", cfg.scorer, f"(in {cfg.config_path}) is not a folder; give a local CLIP model "
                                             "folder, or \"model\" to score with the generating model")  # fmt: skip
    # The init image and mask (img2img, inpainting): checked and stored; the size defaults to the image's.
    from steady.request.source import resolve_source

    found = resolve_source(request, cfg, info)
    width, height = found.size or (info.native_size, info.native_size)
    # The prompt's LoRA tags, found, hashed and fitted to the model (a wildcard or a Prompt S/R axis
    # may change them per variant, below); then what the request left out: a few-step LoRA's
    # recommendations, the model's own defaults (steady.request.defaults), the built-in ones.
    # The VAE (steady.models.vae): auto, none, a name in vae_dir or a path, fitted to the model.
    from steady.models.vae import vae_entry

    vae = vae_entry(request.vae, info, cfg, request.allow_pickle)
    loras = _LoraTags(cfg, info, request.allow_pickle, styles, vae)
    extra = loras.extra(request.prompt, request.negative_prompt)
    filled = fill(request, Path(model_path), (width, height), embedded, [e["path"] for e in extra.get("loras", [])])
    if filled.notes:
        extra = {**extra, "warnings": [*extra.get("warnings", []), *filled.notes]}
    request = dataclasses.replace(filled.request, seed=resolve_seed(request.seed))
    from steady.request.hires import resolve_hires

    hires = resolve_hires(request, cfg)
    axes = tuple(axes_of(request))
    if variants is None:
        variants = tuple(expand(request, request.seed, cfg.home / "wildcards"))
    if request.x_axis:  # a grid sets how many images the run has
        request = dataclasses.replace(request, n_images=len(variants))
    elif variants and len(variants) != request.n_images:
        raise BadInput("n_images", request.n_images, f"the run has {len(variants)} variants")
    # The prompts' A1111 syntax and the texts their schedules make, each variant's too (a wildcard,
    # a Prompt S/R or a Steps axis changes them).
    texts = {("prompt", request.prompt, request.steps), ("negative_prompt", request.negative_prompt, request.steps)}
    for v in variants:
        for name in ("prompt", "negative_prompt"):
            texts.add((name, v.overrides.get(name, getattr(request, name)), v.overrides.get("steps", request.steps)))
    for name, text, steps in sorted(texts):
        check_prompt(strip_lora_tags(text), name, steps)  # as the worker reads it: without LoRA tags
    # Every variant's LoRA tags (a wildcard or a Prompt S/R axis may change them).
    if found.warnings:
        extra = {**extra, "warnings": list(dict.fromkeys([*extra.get("warnings", []), *found.warnings]))}
    if getattr(info, "inpainting", False):  # recorded: its images were made with the inpainting conditioning
        extra = {**extra, "inpainting_model": True}
    variants = tuple(loras.variant(v, request, extra) for v in variants)
    # The output folder: writable, with room for the run.
    out_dir = Path(request.out_dir).expanduser() if request.out_dir else cfg.outputs_dir / _dt.date.today().isoformat()
    prepare_out_dir(out_dir, needed_bytes=request.n_images * (request.width * request.height * 3 + 4096))
    model = ModelChoice(Path(model_path), info.name, short_hash(model_path, cfg), info.arch, info)
    found.keep()  # the init image and mask, kept by hash: the request is accepted
    return Resolved(request, model, device, dtype, out_dir, tuple(variants), axes, extra=extra, source=found.source,
                    hires=hires)  # fmt: skip


def _styled(request: GenerationRequest, cfg: Settings) -> tuple[GenerationRequest, list[str]]:
    """``request`` with its styles applied to its prompts, and their names ([] when none)."""
    from steady.prompts.styles import apply_styles, read_styles, style_names

    names = style_names(request.styles)
    if not names:
        return request, []
    path = cfg.styles_file
    prompt, negative = apply_styles(request.prompt, request.negative_prompt, names, read_styles(path), path)
    styled = dataclasses.replace(request, prompt=prompt, negative_prompt=negative).validate()  # the bounds still hold
    return styled, names


def _extra(allow_pickle: bool, loras: dict[str, Any]) -> dict[str, Any]:
    """ImageParams.extra of an image: whether pickles were allowed, its LoRAs and warnings."""
    return {**({"allow_pickle": True} if allow_pickle else {}), **loras}


class _LoraTags:
    """The LoRA tags of one run's prompts, resolved once per name (steady.models.loras)."""

    def __init__(self, cfg: Settings, model: Any, allow_pickle: bool, styles: list[str] | None = None,
                 vae: dict[str, Any] | None = None):  # fmt: skip
        self.cfg, self.model, self.allow_pickle, self.vae = cfg, model, allow_pickle, vae
        self.styles = styles or []  # the A1111 styles applied to the prompts: every image records their names
        self.found: dict[str, Any] = {}  # LoRA name -> steady.models.loras.LoraInfo

    def extra(self, prompt: str, negative: str) -> dict[str, Any]:
        """What an image with these prompts records of its LoRAs: ``loras``, one entry per file
        (name as written, A1111's short hash, text-encoder and UNet weights, path; a file named
        twice has its weights added), and ``warnings`` for LoRAs skipped or options ignored."""
        from steady.models.loras import find_lora, lora_hash, pickle_refusal, unfit_reason
        from steady.prompts.lora import lora_tags

        entries: dict[str, dict[str, Any]] = {}
        warnings: list[str] = []
        for argument, text in (("prompt", prompt), ("negative_prompt", negative)):
            for tag in lora_tags(text, argument):
                if tag.name not in self.found:
                    self.found[tag.name] = find_lora(tag.name, self.cfg, argument, tag.text)
                info = self.found[tag.name]
                if info.format == "pickle" and not self.allow_pickle:
                    raise pickle_refusal(info, argument, tag.text)
                warnings += [f"<lora:{tag.name}>: {item} is not supported; ignored" for item in tag.ignored]
                why = unfit_reason(info, self.model)
                if why:
                    warnings.append(f"<lora:{tag.name}> skipped: {info.path.name} {why}")
                elif str(info.path) in entries:
                    entry = entries[str(info.path)]
                    entry["te"], entry["unet"] = entry["te"] + tag.te, entry["unet"] + tag.unet
                else:
                    entries[str(info.path)] = {"name": tag.name, "hash": lora_hash(info, self.cfg, argument),
                                               "te": tag.te, "unet": tag.unet, "path": str(info.path)}  # fmt: skip
        out: dict[str, Any] = {}
        if entries:
            out["loras"] = list(entries.values())
        embeddings = self._embeddings(strip_lora_tags(prompt), strip_lora_tags(negative), warnings)
        if embeddings:
            out["embeddings"] = embeddings
        if self.styles:
            out["styles"] = list(self.styles)
        if self.vae:
            out["vae"] = dict(self.vae)
        if warnings:
            out["warnings"] = list(dict.fromkeys(warnings))
        return out

    def _embeddings(self, prompt: str, negative: str, warnings: list[str]) -> list[dict[str, Any]]:
        """The textual-inversion embeddings whose names stand as words in the prompts (A1111's
        rule, steady.models.embeddings): one entry each (name, A1111's short hash, vectors, path);
        one that does not fit the model is left out with a warning (the word stays text)."""
        from steady.models.embeddings import embedding_hash, pickle_refusal, unfit_reason, used_embeddings

        infos, problems = used_embeddings((prompt, negative), self.cfg)
        warnings += problems
        entries = []
        for info in infos:
            if info.format == "pickle" and not self.allow_pickle:
                raise pickle_refusal(info, "prompt")
            why = unfit_reason(info, self.model)
            if why:
                warnings.append(f"embedding {info.name} skipped: {info.path.name} {why}")
                continue
            entries.append({"name": info.name, "hash": embedding_hash(info, self.cfg), "vectors": info.vectors,
                            "path": str(info.path)})  # fmt: skip
        return entries

    def variant(self, variant: Variant, request: GenerationRequest, base: dict[str, Any]) -> Variant:
        """``variant`` with its own ``extra`` when its prompts' LoRAs differ from the request's."""
        prompt = variant.overrides.get("prompt", request.prompt)
        negative = variant.overrides.get("negative_prompt", request.negative_prompt)
        if (prompt, negative) == (request.prompt, request.negative_prompt):
            return variant
        mine = self.extra(prompt, negative)
        if mine == base:
            return variant
        return dataclasses.replace(variant, overrides={**variant.overrides, "extra": _extra(request.allow_pickle, mine)})


def prepare_out_dir(out_dir: Path, needed_bytes: int) -> None:
    """Create the folder and prove it is writable and has room, or raise OutputError (`out`)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".steady-probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError("out", str(out_dir), f"cannot write there ({exc.strerror or exc})") from exc
    free = shutil.disk_usage(out_dir).free
    if free < needed_bytes + DISK_RESERVE_BYTES:
        raise OutputError(
            "out",
            str(out_dir),
            f"disk is full: {free // 2**20} MiB free, need about {(needed_bytes + DISK_RESERVE_BYTES) // 2**20} MiB",
        )
