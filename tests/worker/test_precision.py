"""bfloat16 networks with float32 latents on the CPU (steady.worker.precision): the sampler's
latents stay float32, the UNet and VAE run in bfloat16 channels_last, and the picture is the
float32 picture up to rounding."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import steady
from steady.params import GenerationRequest
from steady.request.devices import native_bf16
from steady.worker import recipe
from steady.worker.direct import DirectRenderer

PROMPT = "a small red circle at the top left on a blue background"


def test_latents_stay_float32_while_the_networks_run_in_bfloat16():
    renderer = DirectRenderer.load(GenerationRequest(PROMPT, dtype="bfloat16", steps=6))
    pipe = renderer.pipe
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16
    assert pipe.text_encoder.dtype == torch.bfloat16
    conv = next(m for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] == 3)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    _, latents = recipe.make(renderer.held, renderer.resolved.base_params(), keep_latents=True)
    assert latents.dtype == torch.float32  # the sampler's state
    # A UNet call through the hooks: bf16 inside, float32 out.
    sample = torch.randn(2, 4, 8, 8)
    context = torch.randn(2, 77, pipe.text_encoder.config.hidden_size)
    out = pipe.unet(sample, 10, encoder_hidden_states=context, return_dict=False)[0]
    assert out.dtype == torch.float32


def test_a_bfloat16_image_is_the_float32_image_up_to_rounding():
    def pixels(dtype: str) -> np.ndarray:
        renderer = DirectRenderer.load(GenerationRequest(PROMPT, dtype=dtype))
        return np.asarray(renderer.image(PROMPT, 1234).convert("RGB")).astype(float)

    fp32, bf16 = pixels("float32"), pixels("bfloat16")
    diff = np.abs(fp32 - bf16)
    assert 0 < diff.mean() < 3.0, diff.mean()  # not identical (it is bf16), but the same picture


def test_auto_is_bfloat16_exactly_where_the_cpu_has_it(tmp_path):
    [result] = steady.generate(GenerationRequest(PROMPT, steps=2, seed=1, out_dir=str(tmp_path)))
    assert result.params.dtype == ("bfloat16" if native_bf16() else "float32")
    assert Image.open(result.path).size == (64, 64)
