"""Bounds on what a request may bring in, and error bodies that are always valid, short JSON.

    app.add_middleware(BodyLimitMiddleware)      # 413 past MAX_BODY_BYTES (1 MiB; image endpoints 32 MiB)
    json_safe(value)                             # what an error body may echo of a bad value
    class GenerateBody(Body): ...                # JSON bodies: no unknown fields, no NaN/Infinity,
                                                 # no lone surrogates (BadInput naming the field)

A request body is counted as it arrives: a Content-Length over the limit is refused before any
of it is read, and a chunked body is cut off at the first byte past it. 1 MiB is a thousand
times a long A1111 prompt (the parameter table bounds a prompt's length); the endpoints that take
base64 images (/sdapi/v1/png-info, /sdapi/v1/img2img, /api/inputs) get 32 MiB (a 24 MB PNG).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steady.errors import BadInput

MAX_BODY_BYTES = 1 << 20
IMAGE_BODY_BYTES = 32 << 20  # endpoints that take base64 images: a 24 MB PNG (a 4096x4096 photo's worth)
LARGE_BODY_PATHS = {"/sdapi/v1/png-info": IMAGE_BODY_BYTES, "/sdapi/v1/img2img": IMAGE_BODY_BYTES,
                    "/api/inputs": IMAGE_BODY_BYTES}  # fmt: skip
MAX_ECHO_CHARS = 200  # what an error body repeats of a bad value
MAX_ID = 2**63 - 1  # SQLite's largest integer: a row id past it is refused by name, not an overflow


class Body(BaseModel):
    """A JSON request body: unknown fields, NaN and infinities refused by pydantic (422 naming the
    field), strings UTF-8 cannot hold refused before the model sees them (BadInput naming the field)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        check_text_fields(data, "")
        return data


def body_limit(path: str) -> int:
    return LARGE_BODY_PATHS.get(path, MAX_BODY_BYTES)


class BodyTooLarge(HTTPException):
    """Raised from a request's receive channel once its body passes the limit (FastAPI's body
    reading lets an HTTPException through, so the app's handler answers it as JSON)."""

    def __init__(self, size: int, limit: int, whole: bool = True):
        self.size, self.limit = size, limit
        said = f"is {_bytes(size)}" if whole else f"passed {_bytes(limit)}"
        super().__init__(413, f"the request body {said}; this server takes at most {_bytes(limit)} in one request")


def too_large_response(exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse({"error": exc.detail, "argument": "body", "value": exc.size}, status_code=413)


class BodyLimitMiddleware:
    """Pure ASGI: refuses bodies past ``body_limit(path)`` with 413 and a JSON message."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                refusal = JSONResponse({"error": f"Content-Length {text!r} is not a number of bytes",
                                        "argument": "content-length", "value": text}, status_code=400)  # fmt: skip
                await refusal(scope, receive, send)
                return
            if int(text) > limit:
                await too_large_response(BodyTooLarge(int(text), limit))(scope, receive, send)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(seen, limit, whole=False)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing: answer here if we still can
            if started:
                raise
            await too_large_response(exc)(scope, receive, send)


def shortened(value: Any, depth: int = 0) -> Any:
    """``value`` cut down for an error message: long text to MAX_ECHO_CHARS, containers to 20
    items and 4 levels, anything else that JSON lacks as its repr."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + f"… ({len(value):,} characters)"
    if isinstance(value, (bool, float)) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**30 else shortened(str(value))
    if depth >= 4:
        return shortened(json.dumps(value, default=str) if _dumpable(value) else repr(value))
    if isinstance(value, dict):
        return {shortened(str(k)): shortened(v, depth + 1) for k, v in list(value.items())[:20]}
    if isinstance(value, (list, tuple)):
        return [shortened(v, depth + 1) for v in list(value)[:20]]
    return shortened(repr(value))


def json_safe(value: Any) -> Any:
    """``value`` as something strict JSON can carry and a client can read in one line: shortened,
    NaN and infinities as text, lone surrogates escaped (\\udXXX)."""
    value = shortened(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def error_text(argument: str, value: Any, why: str) -> str:
    """BadInput's one line, with the value shortened (a 10 MB prompt is not repeated back)."""
    text = f"{shortened(argument)}={shortened(value)!r}: {why}"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _dumpable(value: Any) -> bool:
    try:
        json.dumps(value, default=str)
    except (ValueError, RecursionError):
        return False
    return True


def check_text_fields(value: Any, where: str) -> None:
    """BadInput naming the first string in ``value`` (a parsed JSON body, keys included) that UTF-8
    cannot hold: JSON's \\ud800 escapes decode to lone surrogates, which neither SQLite nor a
    PNG text chunk can store. ``where``: the field's name ("": the body itself)."""
    if isinstance(value, str):
        where = where or "body"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadInput(where, shortened(value), f"is not valid Unicode text (a lone surrogate at character "
                                                    f"{exc.start})") from None  # fmt: skip
    elif isinstance(value, dict):
        for key, item in value.items():
            name = json_safe(str(key)) or "''"
            path = f"{where}.{name}" if where else name
            check_text_fields(key, path)
            check_text_fields(item, path)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_text_fields(item, f"{where or 'body'}.{i}")


def _bytes(size: int) -> str:
    return f"{size:,} bytes" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"
