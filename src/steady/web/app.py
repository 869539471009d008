"""The studio's web app: the page, our JSON API and the A1111 API, behind one guard.

    from steady.web.app import create_app
    app = create_app(Studio(settings()), Guard())      # then: uvicorn.run(app, host="127.0.0.1", port=7860)

`steady serve` builds it (steady.cli.serve). The studio's generation thread starts and stops
with the app (lifespan), so an app that is never served starts no worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from steady.errors import BadInput, SteadyError
from steady.web import a1111, api
from steady.version import __version__
from steady.web.security import Guard, GuardMiddleware
from steady.web.studio import Studio


def static_dir() -> str:
    return str(resources.files("steady.web") / "static")


def create_app(studio: Studio, guard: Guard | None = None, start_studio: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_studio:
            studio.start()
        try:
            yield
        finally:
            if start_studio:
                studio.stop()

    app = FastAPI(title="Steady Diffusion", version=__version__, lifespan=lifespan)
    app.state.studio = studio

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"error": str(exc), "argument": exc.argument, "value": _plain(exc.value)},
                            status_code=422 if request.url.path.startswith("/sdapi") else 400)  # fmt: skip

    @app.exception_handler(SteadyError)
    async def steady_error(request: Request, exc: SteadyError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400 if exc.exit_code == 2 else 500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        argument = ".".join(where) or "body"
        value = first.get("input")
        return JSONResponse({"error": f"{argument}={_plain(value)!r}: {first.get('msg', 'invalid')}",
                             "argument": argument, "value": _plain(value), "detail": _plain(exc.errors())},
                            status_code=422)  # fmt: skip

    app.include_router(api.make_router(studio))
    app.include_router(a1111.make_router(studio))
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(f"{static_dir()}/index.html", headers={"Cache-Control": "no-cache"})

    app.add_middleware(GuardMiddleware, guard=guard or Guard())
    return app


def _plain(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
