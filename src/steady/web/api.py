"""The studio's own JSON API under /api (OpenAPI schema at /openapi.json, docs at /docs).

    POST   /api/generate              queue a run (GenerationRequest fields) -> {job_id, run_id}
    POST   /api/inputs                an init image or mask (base64) -> {ref: "sha256:..."} (steady.web.inputs)
    GET    /api/jobs/{id}             its state and images;  POST /api/jobs/{id}/cancel
    GET    /api/jobs/{id}/grid        the X/Y grid PNG of a run made with axes (x_axis, y_axis)
    GET    /api/events                server-sent events: progress (+ latent preview), image, job, memory
    GET    /api/status                what runs now, the queue, the latest memory sample
    GET    /api/images                a gallery page: ?offset&limit&q&model&since&until&favourite&run&trash&sort
                                      &group (an import group)&here (generated here only); by key, not
                                      OFFSET: `after` (a page's `next`) or a position (offset)
    GET    /api/imports               the import groups: folder, when, how many images
    GET    /api/runs/{id}             a run, a page of its images (?offset&limit, 500 at most), its best 3
    GET    /api/images/{id}           one image's record; /file the PNG; /thumb?size= its cached thumbnail
    PATCH  /api/images/{id}           {favourite, rejected};  DELETE: to the trash;  POST /restore
    DELETE /api/trash                 empty the trash
    GET    /api/history               runs newest first (?limit&offset&q, 100 a page at most), each with its word
                                      diff against the run before it and its thumbnails (the iterate panel)
    POST   /api/import                {folder}: index existing PNGs in place (progress as 'import' events)
    GET    /api/models, /api/machine  models on disk; memory of the worker, the server and the machine

Files are only ever served by image id, from the path its catalog row records: no request can
name a path, and the file is opened and checked first (steady.web.files: a regular file, no
symlink, inside the catalog's folders). Bad input is a 4xx with {"error": "...", "argument": ...,
"value": ...} (steady.web.limits bounds the body, and what an error repeats of a value); ids are
whole numbers from 1 to 2**63 - 1 (SQLite's), lists are pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, create_model
from sse_starlette.sse import EventSourceResponse

from steady.catalog import gallery
from steady.errors import BadInput
from steady.images.grid import grid_path
from steady.params import GenerationRequest
from steady.textdiff import word_ops
from steady.web.files import folders, open_recorded, stream
from steady.web.inputs import refuse_paths
from steady.web.limits import MAX_ID, Body
from steady.web.studio import Studio, grid_url

# The parameters an imported image may not know (the size always comes from the PNG itself).
UNKNOWABLE = ("prompt", "negative_prompt", "steps", "cfg_scale", "seed", "sampler", "clip_skip", "model_name",
              "model_hash")
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2**63 - 1)")]
MAX_HISTORY_PAGE = 100


def _generate_body() -> type[BaseModel]:
    """A run, as the page's form sends it: the parameter table's API fields (steady.params)."""
    fields: dict[str, Any] = {}
    for name, f in GenerationRequest.__dataclass_fields__.items():
        p = f.metadata["param"]
        if not p.api:
            continue
        kind = p.kind | None if p.optional else p.kind
        default = ... if f.default is dataclasses.MISSING else f.default
        fields[name] = (kind, Field(default, description=p.help))
    return create_model("GenerateBody", __base__=Body, **fields)


GenerateBody = _generate_body()


class ImportBody(Body):
    folder: str


class FlagsBody(Body):
    favourite: bool | None = None
    rejected: bool | None = None


def not_found(what: str, value: Any) -> JSONResponse:
    return JSONResponse({"error": f"no such {what}: {value}", "argument": what, "value": value}, status_code=404)


def image_json(record: Any) -> dict[str, Any]:
    from steady.images.pngmeta import a1111_parameters

    data = record.to_dict()
    # What the image says, as A1111 writes it; an unknown value (an imported PNG's None or "")
    # is left out of it, and listed in `unknown`, so nothing reads as an invented 0.
    data["infotext"] = a1111_parameters(record.params, version=record.source == "steady")
    data["unknown"] = [name for name in UNKNOWABLE if getattr(record.params, name) in (None, "")]
    data["file_url"] = f"/api/images/{record.id}/file"
    data["thumb_url"] = f"/api/images/{record.id}/thumb"
    return data


def make_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/api")
    cfg = studio.cfg
    roots = folders(cfg)  # outputs, trash, thumbnails: where files may be served from

    @router.post("/generate", status_code=202)
    def generate(body: GenerateBody) -> dict[str, Any]:
        request = GenerationRequest(**body.model_dump())
        refuse_paths(request)  # init_image / mask: references only (steady.web.inputs)
        job = studio.submit(request)
        return {"job_id": job.id, "run_id": job.run_id, "n_images": job.n_images, "seed": job.base_seed}

    @router.get("/jobs/{job_id}")
    def job_state(job_id: Id) -> Any:
        try:
            job = studio.queue.get(job_id)
        except BadInput:
            return not_found("job", job_id)
        images = studio.catalog.images_of_run(job.run_id)
        grid = grid_url(job.id) if grid_path(job).is_file() else ""
        return {"job_id": job.id, "run_id": job.run_id, "state": job.state, "error": job.error,
                "n_images": job.n_images, "image_ids": [i.id for i in images], "grid_url": grid}  # fmt: skip

    @router.get("/jobs/{job_id}/grid")
    def job_grid(job_id: Id) -> Any:
        try:
            job = studio.queue.get(job_id)
        except BadInput:
            return not_found("job", job_id)
        handle = open_recorded(grid_path(job), roots)  # named by the job's own run: no request names a path
        if handle is None:
            return not_found("grid", job_id)
        return stream(handle, "image/png", {"Cache-Control": "private, max-age=3600"})

    @router.post("/jobs/{job_id}/cancel")
    def cancel(job_id: Id) -> Any:
        try:
            return {"cancelled": studio.cancel(job_id)}
        except BadInput:
            return not_found("job", job_id)

    @router.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        return {"cancelled": studio.cancel()}

    @router.get("/status")
    def status() -> dict[str, Any]:
        live = studio.live
        queued = studio.queue.jobs(("queued", "running"), limit=50)
        return {
            "running": None if live.job_id is None else {
                "job_id": live.job_id, "run_id": live.run_id, "index": live.index, "n_images": live.n_images,
                "step": live.step, "steps": live.steps, "fraction": round(live.fraction(), 4),
                "eta_s": round(live.eta_s(), 1)},
            "queue": [{"job_id": j.id, "run_id": j.run_id, "state": j.state, "n_images": j.n_images} for j in queued],
            "memory": studio.memory,
            "default_model": studio.default_model,
        }  # fmt: skip

    @router.get("/events")
    async def events(request: Request) -> EventSourceResponse:
        sub = studio.hub.subscribe()

        async def stream() -> Any:
            try:
                while not await request.is_disconnected():
                    event = await sub.get(timeout=1.0)
                    if event is not None:
                        yield {"event": event["type"], "data": json.dumps(event)}
            finally:
                studio.hub.unsubscribe(sub)

        return EventSourceResponse(stream(), ping=15)

    @router.get("/images")
    def images(offset: int = Query(0, ge=0, le=MAX_ID), limit: int = Query(100, ge=1, le=gallery.MAX_PAGE),
               q: str = "", model: str = "", since: str = "", until: str = "", favourite: bool = False,
               run: int | None = Query(None, ge=1, le=MAX_ID),
               hide_rejected: bool = False, trash: bool = False, sort: str = "newest",
               group: int | None = Query(None, ge=1, le=MAX_ID), here: bool = False,
               after: str = Query("", max_length=400)) -> dict[str, Any]:  # fmt: skip
        flt = gallery.GalleryFilter(q, model, since, until, favourite, run, hide_rejected, trash, sort, group, here)
        return gallery.gallery_page(studio.catalog, flt, offset, limit, after, studio.pages).to_dict()

    @router.get("/imports")
    def imports() -> list[dict[str, Any]]:
        """The import groups, most recently added to first: folder, dates, image count."""
        from steady.catalog.groups import list_groups

        return [group.to_dict() for group in list_groups(studio.catalog)]

    @router.get("/images/{image_id}")
    def image(image_id: Id) -> Any:
        record = studio.catalog.get_image(image_id)
        return not_found("image", image_id) if record is None else image_json(record)

    @router.get("/images/{image_id}/file")
    def image_file(image_id: Id) -> Any:
        record = studio.catalog.get_image(image_id)
        if record is None:
            return not_found("image", image_id)
        handle = open_recorded(record.trash_path or record.path, roots)
        if handle is None:
            return not_found("file", record.file_name)
        return stream(handle, "image/png", {"Cache-Control": "private, max-age=3600"})

    @router.get("/images/{image_id}/thumb")
    async def image_thumb(image_id: Id, size: int = 256) -> Any:
        from steady.images.thumbs import SIZES, thumb_path, thumbnail

        if size not in SIZES:
            raise BadInput("size", size, "must be one of " + ", ".join(map(str, SIZES)))

        record = studio.catalog.get_image(image_id)
        if record is None:
            return not_found("image", image_id)
        fresh = made_ahead(record.trash_path or record.path, thumb_path(cfg.thumbs_dir, image_id, size))
        if fresh is not None:  # made ahead and still newer than its image: served without decoding anything
            return stream(fresh, "image/jpeg", {"Cache-Control": "private, max-age=604800"})
        source = open_recorded(record.trash_path or record.path, roots)
        if source is None:
            return not_found("file", record.file_name)
        with source:  # decoding is CPU work: off the event loop, so one slow thumbnail never stalls the page
            path = await asyncio.to_thread(thumbnail, source, cfg.thumbs_dir, image_id, size, record.file_name)
        cached = open_recorded(path, roots[-1:], exact_elsewhere=False)  # the thumbnails' folder, nowhere else
        if cached is None:
            return not_found("thumbnail", image_id)
        return stream(cached, "image/jpeg", {"Cache-Control": "private, max-age=604800"})

    def made_ahead(source: str, cached: Any) -> Any:
        """The cached thumbnail, opened, when it is newer than its image and the image is still a
        regular file (lstat: a symlink put in its place goes the slow way, which refuses it)."""
        import os
        import stat

        try:
            image = os.lstat(source)
            if not stat.S_ISREG(image.st_mode) or os.stat(cached).st_mtime < image.st_mtime:
                return None
        except (OSError, ValueError):
            return None
        return open_recorded(cached, roots[-1:], exact_elsewhere=False)

    @router.patch("/images/{image_id}")
    def flags(image_id: Id, body: FlagsBody) -> Any:
        if studio.catalog.get_image(image_id) is None:
            return not_found("image", image_id)
        gallery.set_flags(studio.catalog, image_id, body.favourite, body.rejected)
        return image_json(studio.catalog.get_image(image_id))

    @router.delete("/images/{image_id}")
    def trash(image_id: Id) -> Any:
        if studio.catalog.get_image(image_id) is None:
            return not_found("image", image_id)
        gallery.trash_image(studio.catalog, image_id, cfg.trash_dir)
        return {"trashed": image_id}

    @router.post("/images/{image_id}/restore")
    def restore(image_id: Id) -> Any:
        if studio.catalog.get_image(image_id) is None:
            return not_found("image", image_id)
        gallery.restore_image(studio.catalog, image_id)
        return {"restored": image_id}

    @router.delete("/trash")
    def empty_trash() -> dict[str, Any]:
        from steady.images.thumbs import SIZES, thumb_path

        with studio.catalog.reading() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM images WHERE trash_path IS NOT NULL")]
        deleted = gallery.empty_trash(studio.catalog)
        # Their thumbnails go too: SQLite may give a deleted id to a later image, which must not
        # show the old one's picture (an imported file's time is often older than the thumbnail).
        for image_id in ids:
            for size in SIZES:
                thumb_path(cfg.thumbs_dir, image_id, size).unlink(missing_ok=True)
        return {"deleted": deleted}

    @router.get("/runs/{run_id}")
    def run(run_id: Id, offset: int = Query(0, ge=0, le=MAX_ID),
            limit: int = Query(100, ge=1, le=gallery.MAX_PAGE)) -> Any:  # fmt: skip
        """The run, a page of its images (an imported run can hold thousands) and its best three."""
        summary = studio.catalog.get_run(run_id)
        if summary is None:
            return not_found("run", run_id)
        from steady.catalog.scores import best_of_run

        best = best_of_run(studio.catalog, run_id, 3)
        records = [studio.catalog.get_image(i) for i in best]
        return {**summary.to_dict(), "images": [image_json(r) for r in studio.catalog.images_of_run(run_id, limit, offset)],
                "offset": offset, "limit": limit, "best": best,
                "best_images": [image_json(r) for r in records if r is not None]}  # fmt: skip

    @router.get("/history")
    def history(limit: int = Query(20, ge=1, le=MAX_HISTORY_PAGE), offset: int = Query(0, ge=0, le=MAX_ID),
                q: str = "") -> list[dict[str, Any]]:  # fmt: skip
        """Runs newest first, a page at a time (all runs, or those whose prompt contains q); each
        with its words against the run before it (what that edit changed)."""
        runs = studio.catalog.runs_page(q, limit + 1, offset)[::-1]  # one more: the first row's diff needs it
        thumbs = gallery.run_thumbs(studio.catalog, [r.id for r in runs])
        rows: list[dict[str, Any]] = []
        previous = None
        for summary in runs:
            row = summary.to_dict()
            row["diff"] = None if previous is None else [op.__dict__ for op in word_ops(previous.prompt, summary.prompt)]
            row["negative_diff"] = None if previous is None else [
                op.__dict__ for op in word_ops(previous.negative_prompt, summary.negative_prompt)]
            row["image_ids"] = thumbs.get(summary.id, [])
            row.pop("first_image_path", None)
            rows.append(row)
            previous = summary
        return rows[::-1][:limit]

    @router.post("/import", status_code=202)
    def start_import(body: ImportBody) -> dict[str, Any]:
        """Index a folder of PNGs in place; 'import' events report progress, then the summary."""
        return {"folder": str(studio.start_import(body.folder))}

    @router.get("/models")
    def models() -> list[dict[str, Any]]:
        from steady.web.a1111 import model_list

        return [m.__dict__ for m in model_list(studio)]

    @router.get("/machine")
    def machine() -> dict[str, Any]:
        import psutil

        from steady.sysmem import ram_view

        ram, swap = ram_view(), psutil.swap_memory()
        return {"server_rss_bytes": psutil.Process().memory_info().rss, "available_bytes": ram.available,
                "total_bytes": ram.total, "swap_used_bytes": swap.used, "swap_total_bytes": swap.total,
                "worker": studio.memory}  # fmt: skip

    return router
