"""Upscaling over HTTP: A1111's extras endpoints, and ours for the page.

    GET  /sdapi/v1/upscalers             [{name, model_name, model_path, model_url, scale}], None/Lanczos/Nearest first
    POST /sdapi/v1/extra-single-image    {image: base64, upscaler_1, upscaling_resize, ...} -> {image, html_info}
    GET  /api/upscalers                  the same list, for the page
    POST /api/upscale                    {image: 'image:<id>' or 'sha256:<hex>', upscaler, scale} -> {jobs, plans}

Each upscale is a job in the studio's queue (steady.jobs.upscale), made by the same worker as the
page's runs, so the result is in the catalog and the gallery, linked to its source. A1111's
extras options that steady does not have (face restoration, a second upscaler blended in, "scale
to" a size) are refused with a 4xx naming the field rather than ignored.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ConfigDict

from steady.errors import BadInput
from steady.request.upscale import MAX_SCALE, UpscaleRequest, list_upscalers
from steady.web.limits import Body
from steady.web.studio import Studio


class ExtrasBody(Body):
    """A1111's ExtrasSingleImageRequest, the fields steady reads (others are accepted)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    image: str = ""
    resize_mode: int = 0  # 0: scale by upscaling_resize; 1: scale to a size (not supported)
    show_extras_results: bool = True
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0.0
    upscale_first: bool = False


class UpscaleBody(Body):
    image: str  # 'image:<id>' (a catalog image) or 'sha256:<hex>' (an upload: POST /api/inputs)
    upscaler: str = "Lanczos"
    scale: float = 2.0
    tile: int | None = None


def upscaler_list(studio: Studio) -> list[dict[str, Any]]:
    """A1111's shape: name, model_name, model_path, model_url, scale."""
    return [{"name": u.name, "model_name": u.name if u.path else None, "model_path": u.path or None,
             "model_url": None, "scale": u.scale} for u in list_upscalers(studio.cfg)]  # fmt: skip


def source_path(studio: Studio, reference: str, argument: str) -> str:
    """The file a reference names: a catalog image's own file, or a stored upload."""
    from steady.images.inputs import find_stored

    if reference.startswith("image:") and reference[6:].isdigit():
        record = studio.catalog.get_image(int(reference[6:]))
        if record is None or record.trash_path:
            raise BadInput(argument, reference, "no such image in the catalog (or it is in the trash)")
        return record.path
    return find_stored(reference, studio.cfg.inputs_dir, argument).path


def _refuse_extras(body: ExtrasBody) -> None:
    refusals = {"gfpgan_visibility": body.gfpgan_visibility, "codeformer_visibility": body.codeformer_visibility,
                "resize_mode": body.resize_mode,
                "upscaler_2": body.upscaler_2 if body.upscaler_2 not in ("", "None") and body.extras_upscaler_2_visibility
                else None}  # fmt: skip
    for name, value in refusals.items():
        if value:
            raise BadInput(name, value, "is not supported by steady's A1111 API (it upscales by a factor, "
                           "with one upscaler)")  # fmt: skip


def make_router(studio: Studio) -> APIRouter:
    router = APIRouter()

    @router.get("/sdapi/v1/upscalers")
    def a1111_upscalers() -> list[dict[str, Any]]:
        return upscaler_list(studio)

    @router.get("/api/upscalers")
    def upscalers() -> list[dict[str, Any]]:
        return upscaler_list(studio)

    @router.post("/sdapi/v1/extra-single-image")
    async def extra_single_image(body: ExtrasBody) -> Any:
        from steady.web.inputs import decode_b64, store_b64

        _refuse_extras(body)
        if not 1.0 <= body.upscaling_resize <= MAX_SCALE:
            raise BadInput("upscaling_resize", body.upscaling_resize, f"must be between 1 and {MAX_SCALE:g}")
        if body.upscaler_1 in ("", "None"):  # A1111: no upscaler, the image as it came
            raw = await asyncio.to_thread(decode_b64, body.image, "image")
            return {"html_info": "", "image": base64.b64encode(raw).decode()}
        reference = await asyncio.to_thread(store_b64, studio, body.image, "image")
        path = await asyncio.to_thread(source_path, studio, reference, "image")
        request = UpscaleRequest((path,), body.upscaler_1, float(body.upscaling_resize))
        jobs = await asyncio.to_thread(studio.submit_upscale, request)
        outcome = await asyncio.wrap_future(studio.future(jobs[0].id))
        if outcome.state != "done" or not outcome.images:
            if outcome.failure is not None and outcome.failure.kind == "bad-input":
                f = outcome.failure
                raise BadInput("upscaler_1" if f.argument == "upscaler" else f.argument, f.value, f.why)
            return JSONResponse({"error": "UpscaleFailed", "detail": outcome.error or outcome.state,
                                 "errors": outcome.error}, status_code=500)  # fmt: skip
        result = outcome.images[0]
        encoded = await asyncio.to_thread(_encode, studio, result.path)
        post = result.params.extra["postprocess"]
        html = (f"<p>Postprocess upscale by: {post['upscale_by']:g}, Postprocess upscaler: {post['upscaler']}</p>"
                if body.show_extras_results else "")  # fmt: skip
        return {"html_info": html, "image": encoded}

    @router.post("/api/upscale", status_code=202)
    def upscale(body: UpscaleBody) -> dict[str, Any]:
        path = source_path(studio, body.image, "image")
        resolved = studio.prepare_upscale(UpscaleRequest((path,), body.upscaler, body.scale, body.tile))
        jobs = studio.queue_upscale(resolved)
        return {"jobs": [{"job_id": j.id, "run_id": j.run_id, "n_images": j.n_images} for j in jobs],
                "plans": [p.describe() for p in resolved.plans]}  # the planner's tiles, said as the CLI says them

    return router


def _encode(studio: Studio, path: str) -> str:
    from steady.web.a1111 import _encode_files

    return _encode_files(studio, [path])[0]
