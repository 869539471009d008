"""Images a run starts from, over HTTP: uploaded once, then named by hash (steady.images.inputs).

    POST /api/inputs   {"image": base64 or a data: URL}  ->  {"ref": "sha256:<hex>", "sha256", "width", "height"}

A run's ``init_image`` and ``mask`` on our API are such a reference ('sha256:<hex>') or a catalog
image ('image:<id>', "send to img2img"): never a path, so no request names a file on the server.
The A1111 API's base64 ``init_images`` and ``mask`` are stored the same way (``store_b64``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from fastapi import APIRouter

from steady.errors import BadInput
from steady.images.inputs import is_reference, store_bytes
from steady.params import GenerationRequest
from steady.web.limits import Body
from steady.web.studio import Studio


class UploadBody(Body):
    image: str


def decode_b64(data: Any, argument: str) -> bytes:
    """The bytes of a base64 image (plain, or a data: URL as browsers and A1111 clients send), or
    BadInput naming ``argument``."""
    if not isinstance(data, str) or not data:
        raise BadInput(argument, data if not isinstance(data, str) else "", "must be a base64-encoded image")
    if data.startswith("data:"):
        if "," not in data:
            raise BadInput(argument, data[:40], "is a data: URL without the comma before its base64 data")
        data = data.split(",", 1)[1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(argument, data[:40], "is not base64") from None


def store_b64(studio: Studio, data: Any, argument: str) -> str:
    """Check and keep a base64 image; its reference ('sha256:<hex>') for a request."""
    raw = decode_b64(data, argument)
    return "sha256:" + store_bytes(raw, studio.cfg.inputs_dir, argument, f"<{len(raw):,} bytes of base64 image>").sha256


def refuse_paths(request: GenerationRequest) -> None:
    """An HTTP request names its images by reference only (a path would read the server's files)."""
    for name in ("init_image", "mask"):
        value = getattr(request, name)
        if value and not is_reference(value):
            raise BadInput(name, value, "must be 'sha256:<hex>' (an upload: POST /api/inputs) or 'image:<id>' "
                                        "(a catalog image); the API takes no paths")  # fmt: skip


def make_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.post("/inputs", status_code=201)
    async def upload(body: UploadBody) -> dict[str, Any]:
        raw = decode_b64(body.image, "image")
        stored = await asyncio.to_thread(store_bytes, raw, studio.cfg.inputs_dir, "image",
                                         f"<{len(raw):,} bytes of base64 image>")  # fmt: skip
        return {"ref": f"sha256:{stored.sha256}", "sha256": stored.sha256, "width": stored.width,
                "height": stored.height}  # fmt: skip

    return router
