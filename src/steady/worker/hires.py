"""Hires fix: a first pass, enlarged, then repainted by img2img at the larger size (A1111's
txt2img "Hires. fix"). Part of the worker: imports torch.

    image = render_hires(pipe, params, device, on_step=..., preview=..., on_final_latents=...)

1. the first pass at params.width x params.height, kept as latents (a latent upscaler) or decoded
2. enlarged to params.hires's size: the latents interpolated as A1111's Latent upscalers do
   (bilinear, bicubic, nearest, nearest-exact; antialiased or not), or the image by Lanczos,
   nearest, or an upscaler model (steady.worker.upscale: spandrel, in tiles)
3. the second pass: diffusers' img2img pipeline on the same components, hires.steps steps at
   hires.strength (the last int(steps x strength) run), from the same seed

Progress counts both passes as one image: steps 1..N of the first, then N+1.. of the second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from steady.params import Hires, ImageParams, Source

# A1111's latent upscale modes: torch interpolate's mode and antialias flag.
LATENT_MODES = {
    "latent": ("bilinear", False), "latent (antialiased)": ("bilinear", True), "latent (bicubic)": ("bicubic", False),
    "latent (bicubic antialiased)": ("bicubic", True), "latent (nearest)": ("nearest", False),
    "latent (nearest-exact)": ("nearest-exact", False),
}  # fmt: skip
MODEL_TILE = 192  # an upscaler model's tile side (input pixels) for the first pass's image


def render_hires(pipe: Any, params: ImageParams, device: str, on_step: Callable[[Any], bool] | None = None,
                 preview: Any = None, on_final_latents: Callable[[Any], None] | None = None) -> Any:  # fmt: skip
    """Both passes of ``params`` (which has ``hires``); returns the final PIL image."""
    from steady.worker.pipeline import StepInfo, render

    hires = params.hires
    assert hires is not None
    latent = hires.upscaler in LATENT_MODES
    second_steps = min(int(hires.steps * hires.strength), hires.steps)
    total = params.steps + second_steps

    def shifted(offset: int) -> Callable[[Any], bool]:
        def report(info: Any) -> bool:
            if on_step is None:
                return True
            return on_step(StepInfo(info.step + offset, total, info.seconds_per_step, info.preview_png))

        return report

    # 1. The first pass.
    first = render(pipe, dataclasses.replace(params, hires=None), device, on_step=shifted(0), preview=preview,
                   output_type="latent" if latent else "pil")  # fmt: skip
    # 2. Enlarged.
    big = _upscale_latents(pipe, first, hires) if latent else _upscale_image(first, hires, params)
    if not second_steps:  # strength 0: the enlarged first pass is the image
        return _decode(pipe, big) if latent else big
    # 3. The second pass: img2img of the enlarged first pass, at the larger size.
    second = dataclasses.replace(params, width=hires.width, height=hires.height, steps=hires.steps, hires=None,
                                 source=Source(image="", image_hash="", strength=hires.strength))  # fmt: skip
    return render(pipe, second, device, on_step=shifted(params.steps), preview=preview,
                  on_final_latents=on_final_latents, start_from=big)  # fmt: skip


def _upscale_latents(pipe: Any, latents: torch.Tensor, hires: Hires) -> torch.Tensor:
    mode, antialias = LATENT_MODES[hires.upscaler]
    scale = pipe.vae_scale_factor
    batch = latents[None] if latents.ndim == 3 else latents
    size = (hires.height // scale, hires.width // scale)
    return torch.nn.functional.interpolate(batch.float(), size=size, mode=mode, antialias=antialias).to(latents.dtype)


def _upscale_image(image: Any, hires: Hires, params: ImageParams) -> Any:
    from PIL import Image

    from steady.worker.upscale import load_upscaler, upscale

    if not hires.upscaler_path:  # lanczos, nearest
        resample = Image.Resampling.NEAREST if hires.upscaler == "nearest" else Image.Resampling.LANCZOS
        return image.resize((hires.width, hires.height), resample)
    model = load_upscaler(hires.upscaler_path, params.device, "float32" if params.device == "cpu" else params.dtype)
    try:
        scale = max(hires.width / image.width, hires.height / image.height)
        big = upscale(image, model, scale, tile=MODEL_TILE)
    finally:
        del model
    return big if big.size == (hires.width, hires.height) else big.resize((hires.width, hires.height),
                                                                          Image.Resampling.LANCZOS)  # fmt: skip


def _decode(pipe: Any, latents: torch.Tensor) -> Any:
    vae = pipe.vae
    with torch.inference_mode():
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        scaled = latents.to(device=pipe._execution_device) / vae.config.scaling_factor + shift
        decoded = vae.decode(scaled.to(dtype=vae.dtype), return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded.float(), output_type="pil")[0]
