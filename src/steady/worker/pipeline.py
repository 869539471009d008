"""Encode, denoise and decode one image with a loaded pipeline (steps 4-6 of steady.worker.recipe).
Part of the worker: imports torch and diffusers.

One image at a time, by design: each image is decoded, handed back and released before the
next starts, so memory does not grow with the size of a run.

Reproducibility: the initial latents and every stochastic step draw from a CPU
torch.Generator seeded with the image's seed (as A1111 does), and stochastic schedulers that
keep their own noise source are seeded with it too. Same parameters + same model + same
device and dtype = the same pixels.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from steady.errors import BadInput
from steady.params import ImageParams
from steady.prompts.lora import has_lora_tags, strip_lora_tags
from steady.prompts.schedule import prompt_schedule, text_at
from steady.worker.encode import encode_pairs, needs_weighting
from steady.worker.precision import latents_dtype
from steady.worker.schedulers import make_scheduler

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def quiet_libraries() -> None:
    """Our progress bar is the one the user sees: silence diffusers'/transformers' own bars and
    their import-time notes (e.g. "CLIPImageProcessor requires torchvision", which we never use)."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _alias_flattened_clip(text_encoder: Any) -> None:
    """Let diffusers' clip-skip path find `text_encoder.text_model` on transformers >= 5.6.

    transformers 5.6 flattened CLIPTextModel (no `text_model` level) and diffusers <= 0.42
    still reads `text_encoder.text_model.final_layer_norm` when clip_skip is set
    (huggingface/diffusers#14124). The alias is set with object.__setattr__ so that it is
    not registered as a submodule: state_dict(), .to() and offload hooks do not see it.
    """
    if hasattr(text_encoder, "final_layer_norm") and "text_model" not in vars(text_encoder) and not hasattr(
        text_encoder, "text_model"
    ):
        object.__setattr__(text_encoder, "text_model", text_encoder)


class Interrupted(Exception):
    """The caller asked to stop in the middle of an image; the partial image is discarded."""


@dataclass
class StepInfo:
    step: int
    steps: int
    seconds_per_step: float
    preview_png: bytes = b""  # a cheap RGB preview of the current latent, on some steps


def confirm_device(device: str) -> None:
    """The supervisor chose `device` without torch (steady.request.devices); confirm torch can use it."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("device", device, "no CUDA device is available to this torch build")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BadInput("device", device, "Apple MPS is not available on this machine")


def encoded_text(params: ImageParams) -> ImageParams:
    """``params`` with the prompts the text encoder reads: without their LoRA tags, which A1111
    takes out before anything else reads the text (steady.prompts.lora); step 3 applied them."""
    if not (has_lora_tags(params.prompt) or has_lora_tags(params.negative_prompt)):
        return params
    return dataclasses.replace(params, prompt=strip_lora_tags(params.prompt),
                               negative_prompt=strip_lora_tags(params.negative_prompt))  # fmt: skip


def step_conditioning(pipe: Any, params: ImageParams) -> list[Any]:
    """Per sampling step, our own (prompt, negative) embeddings where diffusers' would differ from
    A1111's: emphasis, BREAK, more than 75 tokens, prompt editing and alternation (all of which
    `needs_weighting` sees); [] otherwise. A prompt that never changes is a schedule of one text.
    Each distinct text is encoded once; equal steps share one object."""
    if not needs_weighting(pipe, params.prompt, params.negative_prompt):
        return []
    positive = prompt_schedule(params.prompt, params.steps)
    negative = prompt_schedule(params.negative_prompt, params.steps)
    per_step = [(positive[text_at(positive, i)].text, negative[text_at(negative, i)].text) for i in range(params.steps)]
    pairs = list(dict.fromkeys(per_step))
    by_pair = dict(zip(pairs, encode_pairs(pipe, pairs, params.clip_skip)))
    return [by_pair[pair] for pair in per_step]


def render(
    pipe: Any,
    params: ImageParams,
    device: str,
    on_step: Callable[[StepInfo], bool] | None = None,
    preview: Any = None,
    preview_every_s: float = 0.5,
    on_final_latents: Callable[[Any], None] | None = None,
    output_type: str = "pil",
    start_from: Any = None,
):
    """Steps 4-6 of steady.worker.recipe for one image: encode, denoise, decode; returns a PIL image.

    A fresh scheduler and the seed's noise, then the diffusers pipeline's own __call__ (with our
    weighted conditioning where A1111 syntax needs it).
    `on_step` is called after each step; returning False interrupts the image. With `preview`
    (a steady.worker.preview.PreviewMaker) a step at least `preview_every_s` after the last
    preview carries a small PNG of the current latent. ``output_type="latent"``: the final latents
    instead of an image (a hires fix's first pass); ``start_from``: an img2img pass's starting
    image or latents held in memory (a hires fix's second pass) instead of params.source's file.
    """
    params = encoded_text(params)
    # Initial noise from a CPU generator: identical across devices for the same seed.
    generator = torch.Generator(device="cpu").manual_seed(params.seed)
    start = None
    if params.source is not None:  # img2img / inpainting: the same components in diffusers' own pipeline
        from steady.worker.img2img import start_image

        start = start_image(pipe, params, device, generator, given=start_from)
        pipe = start.pipe
        if not start.steps:  # strength 0: nothing to sample
            return start.round_trip()
    # A fresh scheduler per image, so no state leaks from one image to the next.
    pipe.scheduler = make_scheduler(params.sampler, pipe.scheduler.config, params.seed)
    steps = start.steps if start is not None else params.steps  # img2img: the last N x strength of N

    # Encode, denoise, decode. Progress and cancellation go through the pipeline's own
    # callback_on_step_end and interrupt flag.
    started = time.perf_counter()
    stopped = False
    last_preview = started
    first_done = 0.0  # when step 1 ended: it also carries encoding and one-time warm-up

    def _callback(pipeline, step_index, timestep, tensors):
        nonlocal stopped, last_preview, first_done
        done = step_index + 1
        now = time.perf_counter()
        if done == 1:
            first_done = now
        # Seconds per step from step 2 on (0.0: not known yet), so that an ETA is not a first
        # step's warm-up times the steps left.
        info = StepInfo(done, steps, (now - first_done) / (done - 1) if done > 1 else 0.0)
        if preview is not None and done < steps and now - last_preview >= preview_every_s:
            info.preview_png, last_preview = preview.png(tensors["latents"]), now
        if on_final_latents is not None and done == steps:
            on_final_latents(tensors["latents"].detach().clone())
        if on_step is not None and on_step(info) is False:
            stopped = True
            pipeline._interrupt = True
        if schedule and step_index + 1 < len(schedule) and schedule[step_index + 1] is not schedule[step_index]:
            # A1111 prompt editing / alternation: the next step's conditioning.
            nxt = schedule[step_index + 1]
            cfg = pipeline.do_classifier_free_guidance
            for key, (positive, negative) in (("prompt_embeds", (nxt.prompt, nxt.negative)),
                                              ("add_text_embeds", (nxt.pooled, nxt.negative_pooled))):  # fmt: skip
                if key in tensors and positive is not None:  # add_text_embeds: SDXL's pooled prompt
                    current = tensors[key]
                    both = torch.cat([negative, positive]) if cfg else positive
                    tensors[key] = both.to(device=current.device, dtype=current.dtype)
        return tensors

    kwargs: dict[str, Any] = dict(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt or None,
        num_inference_steps=params.steps,
        guidance_scale=params.cfg_scale,
        width=params.width,
        height=params.height,
        generator=generator,
        output_type=output_type,
        callback_on_step_end=_callback,
    )
    if start is None:
        scale = pipe.vae_scale_factor
        shape = (1, pipe.unet.config.in_channels, params.height // scale, params.width // scale)
        latents = torch.randn(shape, generator=generator, dtype=torch.float32)
        kwargs["latents"] = latents.to(device=device, dtype=latents_dtype(pipe))  # float32 under steady.worker.precision
    else:
        del kwargs["width"], kwargs["height"]
        kwargs.update(start.kwargs)
    schedule = step_conditioning(pipe, params)
    if schedule:
        # A1111 emphasis, BREAK, > 75 tokens, prompt editing: our own chunked, weighted embeddings.
        _alias_flattened_clip(pipe.text_encoder)
        del kwargs["prompt"], kwargs["negative_prompt"]
        first = schedule[0]
        kwargs.update(prompt_embeds=first.prompt, negative_prompt_embeds=first.negative,
                      callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])  # fmt: skip
        if first.pooled is not None:  # SDXL
            kwargs.update(pooled_prompt_embeds=first.pooled, negative_pooled_prompt_embeds=first.negative_pooled)
            kwargs["callback_on_step_end_tensor_inputs"].append("add_text_embeds")
    elif params.clip_skip > 1:
        # A1111 counts layers used from the end (2 = penultimate); diffusers counts layers skipped.
        kwargs["clip_skip"] = params.clip_skip - 1
        _alias_flattened_clip(pipe.text_encoder)
    with torch.inference_mode():
        output = pipe(**kwargs)
    if stopped:
        raise Interrupted()
    # Hand back the image; the latents and intermediate tensors go out of scope here.
    return output.images[0] if start is None else start.finish(output.images[0])
