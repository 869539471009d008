"""img2img and inpainting with the loaded pipeline's own components (steps 4-6 of
steady.worker.recipe when an image has a Source). Part of the worker: imports torch and diffusers.

    start = start_image(pipe, params, device, generator)
    output = start.pipe(prompt..., **start.kwargs, callback_on_step_end=...)   # diffusers' own __call__
    image = start.finish(output.images[0])

The pipeline is diffusers' real img2img or inpainting pipeline for the architecture
(AutoPipelineForImage2Image / AutoPipelineForInpainting ``from_pipe``): the same UNet, VAE and
text encoders, nothing loaded again. With N steps and denoising strength F, the last
int(N x F) of N steps run, as in A1111 and diffusers. What A1111 does to the image and mask
before and after is steady.images.masking (torch-free); what it does to the latents ("latent
upscale", "latent noise", "latent nothing") is here. A checkpoint with a 9-channel UNet (an
inpainting model) always goes through the inpainting pipeline, which gives it the masked image
and the mask as its extra channels (a white mask without one: the whole image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from steady.errors import BadInput
from steady.images.masking import Prepared, finish, prepare
from steady.params import ImageParams

_MARK = "_steady_fp32_latents"  # steady.worker.precision's mark: the derived pipeline keeps float32 latents


@dataclass
class StartImage:
    pipe: Any  # the img2img or inpainting pipeline made from the loaded one's components
    prepared: Prepared
    steps: int  # the sampling steps that actually run: int(N x strength)
    kwargs: dict[str, Any] = field(default_factory=dict)  # image, strength, mask_image, size for __call__

    def finish(self, painted: Any) -> Any:
        """The painted image pasted back and the original laid over it (A1111's overlay)."""
        return finish(painted, self.prepared)

    def round_trip(self) -> Any:
        """Strength 0 (no step runs): the init image through the VAE and back, as A1111 gives it."""
        pipe = self.pipe
        with torch.inference_mode():
            latents = _encode(pipe, self.prepared.image, None)
            vae = pipe.vae
            scaled = latents / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
            decoded = vae.decode(scaled.to(dtype=vae.dtype), return_dict=False)[0]
        return self.finish(pipe.image_processor.postprocess(decoded.float(), output_type="pil")[0])


def is_inpainting_unet(pipe: Any) -> bool:
    return int(pipe.unet.config.in_channels) == 9


def start_image(pipe: Any, params: ImageParams, device: str, generator: torch.Generator,
                given: Any = None) -> StartImage:  # fmt: skip
    """The pipeline, the prepared image and the __call__ arguments for ``params.source``
    (``given``: the image or latents to start from, held in memory: a hires fix's second pass)."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    src = params.source
    assert src is not None
    if isinstance(given, torch.Tensor):
        derived = AutoPipelineForImage2Image.from_pipe(pipe)
        if getattr(pipe, _MARK, False):
            setattr(derived, _MARK, True)
        steps = min(int(params.steps * src.strength), params.steps)
        return StartImage(derived, Prepared(None), steps, {"strength": src.strength, "image": given.to(device)})
    init = given if given is not None else _open(src.image, "init_image")
    mask = _open(src.mask, "mask") if src.mask else None
    prepared = prepare(init, mask, src, params.width, params.height)
    inpaint = prepared.mask is not None or is_inpainting_unet(pipe)
    derived = (AutoPipelineForInpainting if inpaint else AutoPipelineForImage2Image).from_pipe(pipe)
    if getattr(pipe, _MARK, False):
        setattr(derived, _MARK, True)
    steps = min(int(params.steps * src.strength), params.steps)
    kwargs: dict[str, Any] = {"strength": src.strength}
    image: Any = prepared.image
    latent_content = prepared.mask is not None and src.masked_content in ("latent noise", "latent nothing")
    if steps and (src.resize_mode == "latent upscale" or latent_content):
        image = _latents(derived, prepared, params, device, generator)
    kwargs["image"] = image
    if inpaint:
        from PIL import Image

        mask_image = prepared.mask if prepared.mask is not None else Image.new("L", (params.width, params.height), 255)
        kwargs.update(mask_image=mask_image, width=params.width, height=params.height)
        if is_inpainting_unet(pipe):  # the UNet's extra channels: the original with the mask cut out
            kwargs["masked_image_latents"] = _masked_image_latents(derived, prepared.image, mask_image, generator)
        elif isinstance(image, torch.Tensor):  # unread by a 4-channel UNet, but diffusers cannot make it from latents
            kwargs["masked_image_latents"] = image
    return StartImage(derived, prepared, steps, kwargs)


def _open(path: str, argument: str) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError) as exc:
        raise BadInput(argument, path, f"cannot be read ({exc})") from None


def _encode(pipe: Any, image: Any, generator: torch.Generator | None) -> torch.Tensor:
    """A PIL image to scaled latents (sampled with ``generator``; None: the distribution's mean)."""
    vae = pipe.vae
    device = pipe._execution_device
    pixels = pipe.image_processor.preprocess(image).to(device=device, dtype=vae.dtype)
    dist = vae.encode(pixels).latent_dist
    latents = dist.sample(generator) if generator is not None else dist.mode()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.scaling_factor).float()


def _latents(pipe: Any, prepared: Prepared, params: ImageParams, device: str, generator: torch.Generator) -> torch.Tensor:
    """The init latents A1111 makes: resized for latent upscale (bilinear), the masked area replaced by
    the seed's noise (latent noise) or zeros (latent nothing)."""
    scale = pipe.vae_scale_factor
    size = (params.height // scale, params.width // scale)
    image = prepared.image
    if image.width % scale or image.height % scale:
        image = image.resize((max(scale, image.width // scale * scale), max(scale, image.height // scale * scale)))
    with torch.inference_mode():
        latents = _encode(pipe, image, generator)
    if tuple(latents.shape[-2:]) != size:
        latents = torch.nn.functional.interpolate(latents, size=size, mode="bilinear")
    src = params.source
    if prepared.mask is not None and src is not None and src.masked_content in ("latent noise", "latent nothing"):
        import numpy as np

        small = prepared.mask.convert("RGB").resize((size[1], size[0]))
        keep = 1.0 - torch.from_numpy(np.around(np.asarray(small, dtype=np.float32)[..., 0] / 255.0))
        keep = keep[None, None].to(latents.device)
        if src.masked_content == "latent noise":
            noise = torch.randn(latents.shape, generator=torch.Generator("cpu").manual_seed(params.seed))
            latents = latents * keep + noise.to(latents.device) * (1.0 - keep)
        else:
            latents = latents * keep
    return latents.to(device=device)


def _masked_image_latents(pipe: Any, image: Any, mask: Any, generator: torch.Generator) -> torch.Tensor:
    """An inpainting UNet's conditioning image: the original with the repainted area grey (0 in
    [-1, 1]), encoded; as diffusers makes it from a PIL image."""
    import numpy as np
    from PIL import Image

    keep = np.asarray(mask.convert("L").resize(image.size), dtype=np.float32)[..., None] < 127.5
    grey = np.where(keep, np.asarray(image.convert("RGB"), dtype=np.float32), 127.5)
    with torch.inference_mode():
        return _encode(pipe, Image.fromarray(grey.astype(np.uint8)), generator)
