"""The AUTOMATIC1111 API subset that clients use, with A1111's request and response shapes.

    POST /sdapi/v1/txt2img       images as base64 PNG, `parameters` (the request), `info` (a JSON string)
    POST /sdapi/v1/img2img       the same, from `init_images` (and `mask`: inpainting), steady.web.a1111_img2img
    GET  /sdapi/v1/sd-models     [{title, model_name, hash, sha256, filename, config}]
    GET  /sdapi/v1/options       POST it too: the settings in OPTIONS only; sd_model_checkpoint switches the model
    GET  /sdapi/v1/samplers      [{name, aliases, options}];  GET /sdapi/v1/schedulers
    GET  /sdapi/v1/progress      {progress, eta_relative, state, current_image, textinfo}
    POST /sdapi/v1/interrupt     stop the image in progress
    POST /sdapi/v1/png-info      {image: base64} -> {info, items, parameters}
    loras, embeddings, sd-vae, refresh-*, unload-/reload-checkpoint: steady.web.a1111_networks

A txt2img request becomes one GenerationRequest (batch_size × n_iter images) in the same queue
as the page's runs, so its images are in the catalog and the gallery like any other; enable_hr
with hr_scale (or hr_resize_x/y), hr_upscaler, hr_second_pass_steps and denoising_strength is
steady's hires fix. Features steady does not have (scripts, face restoration, tiling, subseeds) are refused with a
4xx naming the field rather than silently ignored; so are settings steady does not know, in
POST /options and in a request's override_settings (OPTIONS lists the known ones and their values).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from dataclasses import dataclass
from typing import Any

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, create_model

from steady.errors import BadInput
from steady.params import (
    _SAMPLER_ALIASES,
    SAMPLERS,
    GenerationRequest,
    canonical_sampler,
    table,
    with_schedule,
)
from steady.web.a1111_img2img import add_routes, img2img_fields
from steady.web.files import folders, open_recorded
from steady.web.limits import Body, check_text_fields
from steady.web.studio import Studio

_IGNORED_SCHEDULERS = ("", "automatic", "normal", "uniform")
_SCHEDULERS = {"automatic": "Automatic", "karras": "Karras", "sgm_uniform": "SGM Uniform"}  # A1111 name: label


@dataclass
class ModelEntry:
    title: str
    model_name: str
    hash: str
    sha256: str
    filename: str
    config: str | None = None


class Txt2ImgBody(Body):
    """A1111's StableDiffusionTxt2ImgProcessingAPI, the fields steady reads (others are accepted)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed_strength: float = 0.0
    sampler_name: str | None = None
    sampler_index: str | None = None
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    denoising_strength: float | None = None  # the hires pass's (A1111's txt2img reads it only with enable_hr)
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    override_settings: dict[str, Any] | None = None
    script_name: str | None = None
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] | None = None


Img2ImgBody = create_model("Img2ImgBody", __base__=Txt2ImgBody, __doc__="A1111's StableDiffusionImg2ImgProcessingAPI: "
                           "txt2img's fields and the init image's (steady.web.a1111_img2img).",
                           **img2img_fields())  # fmt: skip


class PngInfoBody(Body):
    image: str


def _clip_skip(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
        raise ValueError("must be a whole number from 1 to 12")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError("must be " + " or ".join(repr(c) for c in choices))
        return value

    return check


def _hash(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and len(value) <= 64):
        raise ValueError("must be a model hash (at most 64 characters) or null")
    return value


def _vae_name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 4096:
        raise ValueError("must be Automatic, None or a VAE's name (GET /sdapi/v1/sd-vae lists them)")
    return value


def _known_vae(studio: Studio, value: str) -> None:
    """BadInput naming ``sd_vae`` unless ``value`` is Automatic, None or a VAE that /sd-vae lists
    (a setting that names no file would fail every later image instead of this request)."""
    from steady.models.vae import list_vaes

    if request_vae(value) in ("auto", "none"):
        return
    names = {info.name for info in list_vaes(studio.cfg)} | {info.path.stem for info in list_vaes(studio.cfg)}
    if value not in names:
        listed = ", ".join(sorted(names)[:8]) or f"none in {studio.cfg.vae_dir}"
        raise BadInput("sd_vae", value, f"is not Automatic, None or a VAE GET /sdapi/v1/sd-vae lists ({listed})")


def request_vae(value: str) -> str:
    """A1111's sd_vae as GenerationRequest.vae: Automatic -> auto, None -> none, a name as it is."""
    return {"automatic": "auto", "none": "none"}.get(value.strip().lower(), value)


def _checkpoint(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 4096:
        raise ValueError("must be a model's title, name, file or hash (GET /sdapi/v1/sd-models lists them)")
    return value


# The settings steady knows: each checks its value (ValueError says why). sd_vae: "Automatic", "None"
# or a VAE's name (GET /sdapi/v1/sd-vae; steady.request.check finds it); samples_format: steady writes PNG; sd_checkpoint_hash follows from the checkpoint
# (accepted so that a client may post back what GET returned).
OPTIONS: dict[str, Callable[[Any], Any]] = {
    "sd_model_checkpoint": _checkpoint,
    "sd_checkpoint_hash": _hash,
    "CLIP_stop_at_last_layers": _clip_skip,
    "sd_vae": _vae_name,
    "samples_format": _one_of("png"),
}


def checked_options(values: Any, where: str = "") -> dict[str, Any]:
    """``values`` (a JSON object) with every key a known setting and every value checked, or
    BadInput naming the first that is not (``where``: the field they came in, for the name)."""
    if not isinstance(values, dict):
        raise BadInput(where or "body", values, "must be a JSON object of settings")
    check_text_fields(values, where)
    for key, value in values.items():
        label = key or "''"  # an empty key is still named
        name = f"{where}.{label}" if where else label
        if key not in OPTIONS:
            raise BadInput(name, value, "is not a setting steady knows; it knows " + ", ".join(OPTIONS))
        try:
            OPTIONS[key](value)
        except ValueError as exc:
            raise BadInput(name, value, str(exc)) from None
    return values


def model_list(studio: Studio) -> list[ModelEntry]:
    """The embedded model first, then every model in the models folder."""
    from steady.models.default import EMBEDDED_MODEL_NAME, embedded_model_path
    from steady.models.hashing import sha256
    from steady.models.resolve import list_models

    cfg = studio.cfg
    entries = []
    embedded = embedded_model_path()
    digest = sha256(embedded, cfg)
    entries.append(ModelEntry(f"{EMBEDDED_MODEL_NAME} [{digest[:10]}]", EMBEDDED_MODEL_NAME, digest[:10], digest,
                              str(embedded)))  # fmt: skip
    for info in list_models(cfg):
        digest = sha256(info.path, cfg)
        title = f"{info.path.name} [{digest[:10]}]"
        entries.append(ModelEntry(title, info.name, digest[:10], digest, str(info.path)))
    return entries


def find_entry(studio: Studio, wanted: str) -> ModelEntry:
    """A model by title, file name, model name or hash, as A1111 clients name them."""
    for entry in model_list(studio):
        names = (entry.title, entry.model_name, entry.hash, entry.sha256, entry.filename, entry.title.split(" [")[0])
        if wanted in names or wanted.split(" [")[0] in names:
            return entry
    raise BadInput("sd_model_checkpoint", wanted, "is not a model here (GET /sdapi/v1/sd-models lists them)")


def model_name_for(studio: Studio, entry: ModelEntry) -> str:
    """What GenerationRequest.model should say for this entry ("" is the embedded model)."""
    from steady.models.default import embedded_model_path

    return "" if entry.filename == str(embedded_model_path()) else entry.filename


def to_request(studio: Studio, body: Txt2ImgBody) -> GenerationRequest:
    refusals = {
        "script_name": body.script_name, "restore_faces": body.restore_faces,
        "tiling": body.tiling, "subseed_strength": body.subseed_strength,
        "alwayson_scripts": body.alwayson_scripts,
    }  # fmt: skip
    for field, value in refusals.items():
        if value:
            raise BadInput(field, value, "is not supported by steady's A1111 API")
    sampler = canonical_sampler(body.sampler_name or body.sampler_index or "Euler a")
    scheduler = (body.scheduler or "").strip().lower()
    label = _SCHEDULERS.get(scheduler) or next((v for v in _SCHEDULERS.values() if v.lower() == scheduler), None)
    if label is not None:
        sampler = with_schedule(sampler, label, "scheduler")
    elif scheduler not in _IGNORED_SCHEDULERS:
        raise BadInput("scheduler", body.scheduler, "must be one of " + ", ".join(_SCHEDULERS.values()))
    overrides = checked_options(body.override_settings or {}, "override_settings")
    model = studio.default_model
    if overrides.get("sd_model_checkpoint"):
        model = model_name_for(studio, find_entry(studio, overrides["sd_model_checkpoint"]))
    clip_skip = overrides.get("CLIP_stop_at_last_layers", studio.options_store.get("CLIP_stop_at_last_layers", 1))
    vae = request_vae(overrides.get("sd_vae", studio.options_store.get("sd_vae", "Automatic")))
    if body.batch_size < 1 or body.n_iter < 1:
        raise BadInput("batch_size", body.batch_size if body.batch_size < 1 else body.n_iter, "must be at least 1")
    # The fields A1111 names as we do come through the parameter table; the rest are mapped above.
    same = {name: getattr(body, p.a1111) for name, p in table().items() if p.a1111}
    return GenerationRequest(**same, sampler=sampler, clip_skip=clip_skip, n_images=body.batch_size * body.n_iter,
                             model=model, vae=vae, styles="\n".join(body.styles or []), **_hires(body, sampler))  # fmt: skip


def _hires(body: Txt2ImgBody, sampler: str) -> dict[str, Any]:
    """A1111's hires fix fields as the request's (steady.request.hires); its own second-pass
    checkpoint, sampler or prompts are refused, naming the field."""
    if not body.enable_hr:
        return {}
    if body.hr_checkpoint_name not in (None, "", "Use same checkpoint"):
        raise BadInput("hr_checkpoint_name", body.hr_checkpoint_name, "a second pass with another checkpoint is not "
                                                                      "supported (the same model makes both)")  # fmt: skip
    if body.hr_sampler_name not in (None, "", "Use same sampler") and canonical_sampler(body.hr_sampler_name) != sampler:
        raise BadInput("hr_sampler_name", body.hr_sampler_name, "a second pass with another sampler is not supported")
    for name in ("hr_prompt", "hr_negative_prompt"):
        if getattr(body, name) not in ("", getattr(body, name.replace("hr_", ""))):
            raise BadInput(name, getattr(body, name), "a second pass with another prompt is not supported")
    resize = bool(body.hr_resize_x or body.hr_resize_y)
    return {"hires_scale": None if resize else body.hr_scale, "hires_width": body.hr_resize_x or None,
            "hires_height": body.hr_resize_y or None, "hires_steps": body.hr_second_pass_steps,
            "hires_upscaler": body.hr_upscaler or "latent",
            "hires_strength": 0.7 if body.denoising_strength is None else body.denoising_strength}  # fmt: skip


def make_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")

    @router.post("/txt2img")
    async def txt2img(body: Txt2ImgBody) -> Any:
        request = to_request(studio, body)
        job = await asyncio.to_thread(studio.submit, request)
        outcome = await asyncio.wrap_future(studio.future(job.id))
        if outcome.state == "failed":
            return JSONResponse({"error": "GenerationFailed", "detail": outcome.error, "errors": outcome.error},
                                status_code=500)  # fmt: skip
        images = await asyncio.to_thread(_encode_files, studio, [r.path for r in outcome.images]) if body.send_images else []
        return {"images": images, "parameters": body.model_dump(), "info": json.dumps(_info(outcome, request, body))}

    add_routes(router, studio, Img2ImgBody, to_request, _encode_files, _info)  # POST /img2img

    @router.get("/sd-models")
    def sd_models() -> list[dict[str, Any]]:
        return [m.__dict__ for m in model_list(studio)]

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return _options(studio)

    @router.post("/options")
    def set_options(body: dict[str, Any]) -> Any:
        """Known settings only (OPTIONS), all checked before any is applied."""
        checked = checked_options(body)
        if "sd_vae" in checked:
            _known_vae(studio, checked["sd_vae"])
        if "sd_model_checkpoint" in checked:
            entry = find_entry(studio, checked["sd_model_checkpoint"])
            studio.default_model = model_name_for(studio, entry)
        kept = ("sd_model_checkpoint", "sd_checkpoint_hash")  # these two follow from default_model
        studio.options_store.update({k: v for k, v in checked.items() if k not in kept})
        return None

    @router.get("/samplers")
    def samplers() -> list[dict[str, Any]]:
        aliases: dict[str, list[str]] = {name: [] for name in SAMPLERS}
        for alias, name in _SAMPLER_ALIASES.items():
            aliases[name].append(alias)
        return [{"name": name, "aliases": aliases[name], "options": {}} for name in SAMPLERS]

    @router.get("/schedulers")
    def schedulers() -> list[dict[str, Any]]:
        return [{"name": n, "label": label, "aliases": None, "default_rho": -1, "need_inner_model": False}
                for n, label in _SCHEDULERS.items()]  # fmt: skip

    @router.get("/progress")
    def progress(skip_current_image: bool = False) -> dict[str, Any]:
        live = studio.live
        busy = live.job_id is not None
        queued = len(studio.queue.jobs(("queued",), limit=1000))
        current = None
        if busy and live.preview_png and not skip_current_image:
            current = base64.b64encode(live.preview_png).decode()
        fraction = live.fraction()
        eta = live.eta_s()
        return {
            "progress": fraction,
            "eta_relative": eta,
            "state": {"skipped": False, "interrupted": live.interrupted, "stopping_generation": False,
                      "job": f"job {live.job_id}" if busy else "", "job_count": queued + (1 if busy else 0),
                      "job_timestamp": "", "job_no": live.index, "sampling_step": live.step,
                      "sampling_steps": live.steps},
            "current_image": current,
            "textinfo": None,
            "current_task": None if not busy else f"job-{live.job_id}",
        }  # fmt: skip

    @router.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        studio.cancel()
        return {}

    @router.post("/skip")
    def skip() -> dict[str, Any]:
        return {}

    @router.post("/png-info")
    def png_info(body: PngInfoBody) -> dict[str, Any]:
        return read_png_info_b64(body.image)

    return router


def _encode_files(studio: Studio, paths: list[str]) -> list[str]:
    encoded = []
    for path in paths:
        handle = open_recorded(path, folders(studio.cfg))
        if handle is None:
            raise BadInput("images", path, "was made but cannot be served (gone, replaced by a link, or elsewhere)")
        with handle:
            encoded.append(base64.b64encode(handle.read()).decode())
    return encoded


def read_png_info_b64(data: str) -> dict[str, Any]:
    """A1111's /png-info: the `parameters` text, every text chunk, and the parsed values."""
    import tempfile

    from PIL import Image

    from steady.images.pngmeta import read_png_info

    if data.startswith("data:") and "," not in data:
        raise BadInput("image", data[:40], "is a data: URL without the comma before its base64 data")
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        raw = base64.b64decode(payload, validate=False)
    except ValueError as exc:
        raise BadInput("image", data[:40], "is not base64") from exc
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        try:
            with Image.open(io.BytesIO(raw)) as image:
                return {"info": "", "items": {k: str(v) for k, v in image.info.items()}, "parameters": {}}
        except (OSError, Image.DecompressionBombError) as exc:
            raise BadInput("image", data[:40], f"is not an image ({exc})") from exc
    with tempfile.NamedTemporaryFile(suffix=".png") as handle:
        handle.write(raw)
        handle.flush()
        info = read_png_info(handle.name)
    return {"info": info.parameters_text, "items": dict(info.raw), "parameters": info.params}


def _info(outcome: Any, request: GenerationRequest, body: Txt2ImgBody) -> dict[str, Any]:
    from steady.images.pngmeta import a1111_parameters

    results = outcome.images
    first = results[0].params if results else None
    seeds = [r.params.seed for r in results]
    return {
        "prompt": request.prompt, "all_prompts": [request.prompt] * len(results),
        "negative_prompt": request.negative_prompt, "all_negative_prompts": [request.negative_prompt] * len(results),
        "seed": seeds[0] if seeds else request.seed, "all_seeds": seeds, "subseed": -1,
        "all_subseeds": [-1] * len(results), "subseed_strength": 0,
        "width": first.width if first else body.width, "height": first.height if first else body.height,
        "sampler_name": request.sampler, "cfg_scale": request.cfg_scale, "steps": request.steps,
        "batch_size": body.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": first.model_name if first else None, "sd_model_hash": first.model_hash if first else None,
        "sd_vae_name": _vae_of(first, "name"), "sd_vae_hash": _vae_of(first, "hash"), "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": request.hires_strength if request.hires_on() else None,
        "extra_generation_params": {}, "index_of_first_image": 0,
        "infotexts": [a1111_parameters(r.params) for r in results], "styles": list(body.styles or []), "job_timestamp": "",
        "clip_skip": request.clip_skip, "is_using_inpainting_conditioning": False, "version": "steady",
        "run_id": outcome.run_id, "image_ids": [r.image_id for r in results], "state": outcome.state,
    }  # fmt: skip


def _vae_of(params: Any, key: str) -> Any:
    return ((params.extra.get("vae") or {}).get(key) if params is not None else None) or None


def _options(studio: Studio) -> dict[str, Any]:
    from steady.models.default import embedded_model_path

    wanted = studio.default_model or str(embedded_model_path())
    current = next((m for m in model_list(studio) if m.filename == wanted or m.model_name == wanted), None)
    options = {"CLIP_stop_at_last_layers": 1, "samples_format": "png", "sd_vae": "Automatic",
               **studio.options_store}  # fmt: skip
    options["sd_model_checkpoint"] = current.title if current else wanted
    options["sd_checkpoint_hash"] = current.sha256 if current else None
    return options
