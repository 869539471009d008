"""A1111's API for what a user's folder brings (LoRAs, embeddings, VAEs) and for freeing memory,
with A1111's response shapes.

    GET  /sdapi/v1/loras               [{name, alias, path, metadata}]
    POST /sdapi/v1/refresh-loras       null (the folder is read on every request; nothing is cached)
    GET  /sdapi/v1/embeddings          {loaded: {name: {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}},
                                        skipped: {...}}: loaded = fits the current model, skipped = does not
    GET  /sdapi/v1/sd-vae              [{model_name, filename}]
    GET  /sdapi/v1/prompt-styles       [{name, prompt, negative_prompt}] (styles_file; txt2img's styles apply them)
    POST /sdapi/v1/refresh-vae         null;  POST /sdapi/v1/refresh-checkpoints  null
    POST /sdapi/v1/unload-checkpoint   the worker process is recycled (between jobs): the cleanest free
    POST /sdapi/v1/reload-checkpoint   the same; the next image loads the model into a fresh worker

``sd_vae`` in /options and in a request's override_settings (steady.web.a1111) takes "Automatic",
"None" or a name from /sd-vae.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from steady.web.studio import Studio


def make_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")

    @router.get("/loras")
    def loras() -> list[dict[str, Any]]:
        from steady.models.loras import list_loras

        return [{"name": info.rel or info.name, "alias": info.alias or info.name, "path": str(info.path),
                 "metadata": {}} for info in list_loras(studio.cfg)]  # fmt: skip

    @router.get("/embeddings")
    def embeddings() -> dict[str, Any]:
        return embeddings_by_fit(studio)

    @router.get("/sd-vae")
    def sd_vae() -> list[dict[str, Any]]:
        from steady.models.vae import list_vaes

        return [{"model_name": info.name, "filename": str(info.path)} for info in list_vaes(studio.cfg)]

    @router.get("/prompt-styles")
    def prompt_styles() -> list[dict[str, Any]]:
        from steady.prompts.styles import read_styles

        return [{"name": st.name, "prompt": st.prompt, "negative_prompt": st.negative_prompt}
                for st in read_styles(studio.cfg.styles_file).values()]  # fmt: skip

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        return None

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        return None

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        return None

    @router.post("/unload-checkpoint")
    async def unload_checkpoint() -> None:
        await asyncio.to_thread(studio.recycle_worker)
        return None

    @router.post("/reload-checkpoint")
    async def reload_checkpoint() -> None:
        await asyncio.to_thread(studio.recycle_worker)
        return None

    return router


def embeddings_by_fit(studio: Studio) -> dict[str, Any]:
    """A1111's /embeddings: each embedding under ``loaded`` when it fits the current model, else
    under ``skipped``; an unreadable file is left out."""
    from steady.models.default import embedded_model_path
    from steady.models.detect import inspect_model
    from steady.models.embeddings import list_embeddings, unfit_reason
    from steady.models.resolve import find_model

    model = inspect_model(find_model(studio.default_model, studio.cfg) if studio.default_model else embedded_model_path())
    out: dict[str, Any] = {"loaded": {}, "skipped": {}}
    for info in list_embeddings(studio.cfg):
        entry = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                 "shape": info.widths[0] if info.widths else None, "vectors": info.vectors}  # fmt: skip
        out["skipped" if unfit_reason(info, model) else "loaded"][info.name] = entry
    return out
