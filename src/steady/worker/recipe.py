"""One image, as numbered steps: the only render loop in steady. Part of the worker (torch).

    1 load     the pipeline, unless the one held is for the same model, device and dtype; the
               image's VAE on it, or the model's own (steady.worker.vae)
    2 place    apply the memory plan (placement, offload, slicing, tiling, threads)
    3 adapt    the image's LoRAs on, at its weights, and no others (steady.worker.lora); its
               textual-inversion embeddings in the token tables, and no others (steady.worker.embeddings);
               with --backend openvino, the UNet to OpenVINO (steady.worker.openvino_unet)
    4 encode   the prompt's conditioning per step (A1111 emphasis, BREAK, > 75 tokens, editing),
               from the prompt without its LoRA tags, its embeddings' words as their tokens
    5 denoise  the sampler's loop from the seed's noise; progress and cancel between steps;
               img2img and inpainting start from an image (steady.worker.img2img); a hires fix
               adds a second, img2img pass at the larger size (steady.worker.hires)
    6 decode   the final latents to an image (4-6: steady.worker.pipeline.render, through the
               diffusers pipeline's own __call__); NaNs in half precision: again in float32
    7 write    the PNG, atomically, with every parameter (steady.images.pngmeta)
    8 score    prompt adherence, and the feature novelty is measured on

The worker process (steady.worker.main) runs all eight for each RenderImage it is sent. The one
in-process user, steady.worker.direct (measurements that must leave the process boundary out),
calls the same functions: ``load``, ``place``, ``adapt``, ``make``, ``score``, ``feature``.
"""

from __future__ import annotations

import contextlib

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steady.params import ImageParams
from steady.request.planner import Plan


@dataclass
class Held:
    """What the worker keeps between images: at most one pipeline and what is made for it."""

    pipe: Any = None
    key: tuple[Any, ...] | None = None  # (model path, device, dtype, allow_pickle, backend_key) of ``pipe``
    strategy: str = ""  # the memory strategy applied to ``pipe`` ("" before any plan)
    preview: Any = None  # steady.worker.preview.PreviewMaker for ``pipe`` (made when first asked for)
    scorers: dict[str, Any] = field(default_factory=dict)  # steady.worker.adherence scorers for ``pipe``, by setting
    frozen: bool = False  # gc.freeze() has moved ``pipe`` and its caches out of the collector's sight
    loras: dict[str, str] = field(default_factory=dict)  # LoRA adapters on ``pipe``: adapter name -> file
    embeddings: Any = None  # steady.worker.embeddings.LoadedEmbeddings of ``pipe`` (made at the first adapt)
    base_vae: Any = None  # the model's own VAE while another is on ``pipe`` (steady.worker.vae)
    vae_key: str = ""  # the hash of the VAE file on ``pipe`` ("" = the model's own)
    ov_stats: Any = None  # steady.worker.openvino_unet.OvStats once ``pipe``'s UNet runs on OpenVINO
    fused: Any = field(default_factory=lambda: _fused())  # steady.worker.lorafuse.FusedLoras: LoRAs merged into ``pipe``

    def freeze(self) -> None:
        """After an image: what is alive now is the pipeline and its caches. A full gc.collect()
        walks all of it (0.21 s per image on the embedded model, 64x64, where an image takes 0.3 s);
        frozen, the collector walks only what later images make."""
        if self.pipe is not None and not self.frozen:
            gc.collect()
            gc.freeze()
            self.frozen = True

    def drop(self) -> None:
        if self.frozen:  # the old pipeline's cycles must be collectable again
            gc.unfreeze()
            self.frozen = False
        self.pipe = self.key = self.preview = None
        self.scorers = {}
        self.loras = {}
        self.embeddings = None
        self.base_vae = None
        self.vae_key = ""
        self.strategy = ""
        self.ov_stats = None
        self.fused = _fused()


def _fused() -> Any:
    from steady.worker.lorafuse import FusedLoras

    return FusedLoras()


def load(held: Held, model_path: str, params: ImageParams, allow_pickle: bool, placed_by_plan: bool) -> float:
    """1. Load the model into ``held`` unless it is there already; returns the seconds it took.
    ``placed_by_plan``: load on the CPU and let step 2 place it."""
    from steady.models.detect import inspect_model
    from steady.worker.loader import load_pipeline
    from steady.worker.pipeline import DTYPES, confirm_device, quiet_libraries

    key = (model_path, params.device, params.dtype, allow_pickle, *backend_key(params))
    if held.pipe is not None and held.key == key:
        return _vae(held, params, allow_pickle)
    held.drop()  # one pipeline at most: the old one goes before the new one loads
    gc.collect()
    t0 = time.perf_counter()
    quiet_libraries()
    confirm_device(params.device)
    device = "cpu" if placed_by_plan else params.device
    held.pipe = load_pipeline(inspect_model(model_path), device=device, dtype=DTYPES[params.dtype],
                              allow_pickle=allow_pickle)  # fmt: skip
    if params.device == "cpu" and params.dtype == "bfloat16":
        from steady.worker.precision import mixed_cpu_bf16

        mixed_cpu_bf16(held.pipe)  # bf16 networks, float32 latents and sampler
    held.key = key
    _vae(held, params, allow_pickle)
    return time.perf_counter() - t0


def backend_key(params: ImageParams) -> tuple[str, ...]:
    """What of ``params`` a held pipeline is kept for besides the model: its backend, and on
    OpenVINO the LoRA set (baked into the converted UNet: another set loads the pipeline again)."""
    if params.backend != "openvino":
        return (params.backend,)
    return (params.backend, repr([(e["hash"], e["te"], e["unet"]) for e in params.extra.get("loras", [])]))


def _vae(held: Held, params: ImageParams, allow_pickle: bool) -> float:
    """1, the VAE: the one ``params.extra["vae"]`` names, or the model's own (steady.worker.vae);
    a new VAE is placed by step 2 with the rest. Returns the seconds a swap took."""
    if not held.vae_key and not params.extra.get("vae"):
        return 0.0
    from steady.worker.vae import swap_vae

    t0 = time.perf_counter()
    if swap_vae(held, params, allow_pickle):
        held.strategy = ""  # step 2 places the pipeline again, its new VAE with it
    return time.perf_counter() - t0


def place(held: Held, plan: Plan | None) -> None:
    """2. Apply the memory plan, when it differs from the one the pipeline has."""
    from steady.worker.strategy import apply_plan

    if plan is not None and plan.strategy != held.strategy:
        apply_plan(held.pipe, plan)
        held.strategy = plan.strategy


def adapt(held: Held, params: ImageParams) -> list[str]:
    """3. The image's LoRAs (``params.extra["loras"]``) on the pipeline at their weights, the
    others off; none asked for: the base model's own modules. Then its textual-inversion
    embeddings (``params.extra["embeddings"]``) in the token tables, the others out. Returns a
    warning line for each LoRA or embedding that could not be applied (the image is made without it)."""
    from steady.worker.embeddings import LoadedEmbeddings, apply_embeddings
    from steady.worker.lora import apply_loras

    warnings = []
    # On OpenVINO the UNet's LoRAs are in its converted weights: once it runs there, step 1's key
    # holds the LoRA set fixed, and the first image put them on (before the conversion).
    openvino = params.backend == "openvino"
    if (held.loras or params.extra.get("loras")) and held.ov_stats is None:
        # Merged into the weights where cheap (steady.worker.lorafuse), but not before an OpenVINO conversion.
        warnings += apply_loras(held.pipe, held.loras, params, None if openvino else held.fused)
    if held.embeddings is None:
        held.embeddings = LoadedEmbeddings()
    warnings += apply_embeddings(held.pipe, held.embeddings, params)
    if openvino and held.ov_stats is None:  # the UNet, with its LoRAs, to OpenVINO (converted once, cached)
        from steady.worker.openvino_unet import use_openvino

        held.ov_stats = use_openvino(held.pipe, params)
    return warnings


def make(held: Held, params: ImageParams, on_step: Callable[[Any], bool] | None = None, preview: bool = False,
         keep_latents: bool = False, warnings: list[str] | None = None, vae_nan_once: bool = False) -> tuple[Any, Any]:  # fmt: skip
    """4-6. Encode, denoise, decode: the PIL image, and its final latents when ``keep_latents``
    (the adherence score reads them). ``on_step`` returning False stops the image (Interrupted)."""
    from steady.worker.pipeline import render
    from steady.worker.vae import decode_guard

    params = _with_embeddings(held, params)
    final: list[Any] = []
    kwargs = dict(on_step=on_step, preview=_previewer(held, params) if preview else None,
                  on_final_latents=final.append if keep_latents else None)
    # 6. A decode that returns NaNs (float16 overflow) is done again in float32; ``warnings`` says so.
    with decode_guard(held.pipe, warnings if warnings is not None else [], nan_once=vae_nan_once):
        if params.hires is not None:  # 5b. hires fix: a second, img2img pass at the larger size
            from steady.worker.hires import render_hires

            image = render_hires(held.pipe, params, params.device, **kwargs)
        else:
            image = render(held.pipe, params, params.device, **kwargs)
    return image, (final[-1] if final else None)


def write(image: Any, path: str, params: ImageParams, thumbs_dir: str = "") -> None:
    """7. The PNG, atomically (temp file, fsync, rename), with A1111 parameters and our JSON; and,
    given the thumbnails' folder, its grid thumbnail, made from the pixels in memory (one that
    cannot be written is made by the page when first shown instead)."""
    from steady.images.pngmeta import write_png

    write_png(image, path, params)
    if thumbs_dir:
        from pathlib import Path

        from steady.images.thumbs import write_pending

        with contextlib.suppress(OSError):
            write_pending(image, Path(thumbs_dir), path)


def score(held: Held, params: ImageParams, image: Any, latents: Any, scorer: str) -> tuple[float | None, float]:
    """8. Prompt adherence by ``scorer`` ("model" or a CLIP folder), and the seconds it took."""
    from steady.prompts.lora import strip_lora_tags
    from steady.prompts.schedule import prompt_schedule
    from steady.worker.adherence import make_scorer

    t0 = time.perf_counter()
    if scorer == "model" and int(held.pipe.unet.config.in_channels) != 4:
        return None, 0.0  # an inpainting UNet wants a mask and an image beside the latents: not scored by it
    if scorer not in held.scorers:
        held.scorers[scorer] = make_scorer(held.pipe, scorer)
    # A prompt that changes during sampling (A1111 prompt editing) is scored by its last text, as
    # the text encoder read it (without LoRA tags).
    prompt = prompt_schedule(strip_lora_tags(params.prompt), params.steps)[-1].text
    adherence = held.scorers[scorer].score(latents, image, prompt) if latents is not None else None
    return adherence, time.perf_counter() - t0


def feature(image: Any) -> bytes:
    """8. The image's novelty feature (steady.scoring.novelty), as the blob the catalog stores."""
    from steady.scoring.novelty import image_feature, to_blob

    return to_blob(image_feature(image))


def _with_embeddings(held: Held, params: ImageParams) -> ImageParams:
    """``params`` with the prompts as step 4 reads them when embeddings are loaded: LoRA tags out,
    each embedding's word replaced by its token."""
    if held.embeddings is None or not held.embeddings.words:
        return params
    import dataclasses

    from steady.worker.embeddings import with_embedding_tokens
    from steady.worker.pipeline import encoded_text

    plain = encoded_text(params)
    return dataclasses.replace(plain, prompt=with_embedding_tokens(plain.prompt, held.embeddings),
                               negative_prompt=with_embedding_tokens(plain.negative_prompt, held.embeddings))  # fmt: skip


def _previewer(held: Held, params: ImageParams) -> Any:
    if held.preview is None:
        from steady.worker.preview import PreviewMaker

        held.preview = PreviewMaker.for_pipeline(held.pipe, params.model_arch)
    return held.preview
