"""A1111's POST /sdapi/v1/img2img: img2img and inpainting with A1111's request fields.

    init_images (base64; one), denoising_strength, resize_mode (0-3), mask (base64), mask_blur,
    inpainting_fill (0 fill, 1 original, 2 latent noise, 3 latent nothing), inpaint_full_res,
    inpaint_full_res_padding, inpainting_mask_invert (0/1), and txt2img's fields

The images are checked and kept by hash (steady.images.inputs) and the request goes into the same
queue as every other run, so its images are in the catalog with their lineage. A request refused
after its images were kept takes them away again: nothing is left of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from steady.errors import BadInput
from steady.images.inputs import checked_bytes
from steady.params import MASKED_CONTENT, RESIZE_MODES, GenerationRequest
from steady.web.inputs import decode_b64
from steady.web.studio import Studio


def img2img_fields() -> dict[str, Any]:
    """Img2ImgBody's own fields, with A1111's API defaults (added to Txt2ImgBody in steady.web.a1111)."""
    return {
        "init_images": (list[str], []), "resize_mode": (int, 0), "denoising_strength": (float | None, 0.75),
        "image_cfg_scale": (float | None, None), "mask": (str | None, None), "mask_blur": (int | None, 4),
        "mask_blur_x": (int | None, None), "mask_blur_y": (int | None, None), "inpainting_fill": (int, 0),
        "inpaint_full_res": (bool | int, True), "inpaint_full_res_padding": (int, 0),
        "inpainting_mask_invert": (int | bool, 0), "initial_noise_multiplier": (float | None, None),
        "include_init_images": (bool, False),
    }  # fmt: skip


def to_img2img(studio: Studio, body: Any, base: GenerationRequest) -> tuple[GenerationRequest, list[Any]]:
    """The request for an A1111 img2img body (``base``: its txt2img part), and the checked images
    still to keep (steady.images.inputs.StoredImage)."""
    if len(body.init_images) != 1:
        raise BadInput("init_images", len(body.init_images), "give exactly one init image (steady makes one run per "
                                                             "init image; send one request for each)")  # fmt: skip
    if body.initial_noise_multiplier not in (None, 1, 1.0):
        raise BadInput("initial_noise_multiplier", body.initial_noise_multiplier, "is not supported (only 1)")
    if not 0 <= body.resize_mode < len(RESIZE_MODES):
        raise BadInput("resize_mode", body.resize_mode, "must be 0 (just resize), 1 (crop and resize), 2 (resize and "
                                                        "fill) or 3 (latent upscale)")  # fmt: skip
    if not 0 <= body.inpainting_fill < len(MASKED_CONTENT):
        raise BadInput("inpainting_fill", body.inpainting_fill, "must be 0 (fill), 1 (original), 2 (latent noise) "
                                                                "or 3 (latent nothing)")  # fmt: skip
    blurs = {b for b in (body.mask_blur_x, body.mask_blur_y) if b is not None}
    if len(blurs) > 1:
        raise BadInput("mask_blur_x", body.mask_blur_x, "must equal mask_blur_y (steady blurs both ways alike)")
    mask_blur = blurs.pop() if blurs else (4 if body.mask_blur is None else body.mask_blur)
    init = checked_bytes(decode_b64(body.init_images[0], "init_images.0"), studio.cfg.inputs_dir, "init_images.0",
                         "<base64 image>")  # fmt: skip
    pending = [init]
    mask_ref = ""
    if body.mask:
        mask = checked_bytes(decode_b64(body.mask, "mask"), studio.cfg.inputs_dir, "mask", "<base64 image>")
        pending.append(mask)
        mask_ref = f"sha256:{mask.sha256}"
    request = dataclasses.replace(
        base, init_image=f"sha256:{init.sha256}", mask=mask_ref,
        strength=0.75 if body.denoising_strength is None else body.denoising_strength,
        resize_mode=RESIZE_MODES[body.resize_mode], mask_blur=mask_blur,
        masked_content=MASKED_CONTENT[body.inpainting_fill], only_masked=bool(body.inpaint_full_res),
        invert_mask=bool(body.inpainting_mask_invert), only_masked_padding=body.inpaint_full_res_padding,
    )  # fmt: skip
    request.validate()  # the values, before anything is kept
    return request, pending


def add_routes(router: APIRouter, studio: Studio, body_type: type, base_request: Any, encode: Any, info: Any) -> None:
    """POST /img2img on the A1111 router (``base_request``, ``encode``, ``info``: steady.web.a1111's)."""

    async def img2img(body: Any) -> Any:
        request, pending = to_img2img(studio, body, base_request(studio, body))
        kept = [Path(p.path) for p in pending if not Path(p.path).exists()]
        try:
            for stored in pending:
                stored.keep()
            job = await asyncio.to_thread(studio.submit, request)
        except BadInput:
            for path in kept:  # refused: the images this request brought go again
                path.unlink(missing_ok=True)
            raise
        outcome = await asyncio.wrap_future(studio.future(job.id))
        if outcome.state == "failed":
            return JSONResponse({"error": "GenerationFailed", "detail": outcome.error, "errors": outcome.error},
                                status_code=500)  # fmt: skip
        images = await asyncio.to_thread(encode, studio, [r.path for r in outcome.images]) if body.send_images else []
        details = {**info(outcome, request, body), "denoising_strength": request.strength,
                   "is_using_inpainting_conditioning": any(r.params.extra.get("inpainting_model") for r in outcome.images)}
        parameters = body.model_dump()
        if not body.include_init_images:  # as A1111: the request echoed without its images
            parameters.update(init_images=None, mask=None)
        return {"images": images, "parameters": parameters, "info": json.dumps(details)}

    img2img.__annotations__["body"] = body_type  # the model itself: this module's annotations are strings
    router.add_api_route("/img2img", img2img, methods=["POST"])
