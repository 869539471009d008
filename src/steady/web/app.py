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
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from steady.errors import BadInput, SteadyError
from steady.version import __version__
from steady.web import a1111, a1111_networks, api, inputs, upscale
from steady.web.apidocs import docs_page
from steady.web.limits import BodyLimitMiddleware, BodyTooLarge, error_text, json_safe, too_large_response
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

    # FastAPI's own /docs and /redoc load their scripts from a CDN: the studio serves a page of
    # its own instead (steady.web.apidocs), so nothing it serves reaches outside the machine.
    app = FastAPI(title="Steady Diffusion", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.studio = studio

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"error": error_text(exc.argument, exc.value, exc.why),
                             "argument": json_safe(exc.argument), "value": json_safe(exc.value)},
                            status_code=422 if request.url.path.startswith("/sdapi") else 400)  # fmt: skip

    @app.exception_handler(SteadyError)
    async def steady_error(request: Request, exc: SteadyError) -> JSONResponse:
        return JSONResponse({"error": json_safe(str(exc))}, status_code=400 if exc.exit_code == 2 else 500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        argument, value = ".".join(where) or "body", first.get("input")
        return JSONResponse({"error": error_text(argument, value, first.get("msg", "invalid")),
                             "argument": json_safe(argument), "value": json_safe(value)}, status_code=422)  # fmt: skip

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return too_large_response(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        """Starlette's own refusals (no such route, wrong method, an unreadable body) as JSON."""
        argument = "path" if exc.status_code in (404, 405) else "body"
        value = request.url.path if argument == "path" else None
        return JSONResponse({"error": json_safe(f"{exc.detail}: {request.method} ") + json_safe(request.url.path),
                             "argument": argument, "value": json_safe(value)},
                            status_code=exc.status_code, headers=exc.headers)  # fmt: skip

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: answered as JSON (never a text page); the server logs its traceback."""
        return JSONResponse({"error": json_safe(f"internal error ({type(exc).__name__}); the server log has "
                                                "the details")}, status_code=500)  # fmt: skip

    app.include_router(api.make_router(studio))
    app.include_router(a1111.make_router(studio))
    app.include_router(a1111_networks.make_router(studio))
    app.include_router(inputs.make_router(studio))
    app.include_router(upscale.make_router(studio))
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(f"{static_dir()}/index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(f"{static_dir()}/favicon.ico", media_type="image/x-icon",
                            headers={"Cache-Control": "public, max-age=604800"})  # fmt: skip

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(GuardMiddleware, guard=guard or Guard())  # outermost: refuses before anything is read
    return app
