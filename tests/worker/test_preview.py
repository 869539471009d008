"""The latent preview: a linear latent -> RGB map that looks like the decoded image."""

from __future__ import annotations

import numpy as np
import torch

from steady.models.default import embedded_model_path
from steady.models.detect import inspect_model
from steady.worker.loader import load_pipeline
from steady.worker.preview import SD1_FACTORS, PreviewMaker
from tests.fixtures.tiny_models import make_tiny_pipeline


def test_preview_of_the_embedded_model_is_its_decoded_image() -> None:
    """No published latent->RGB map for the embedded VAE, and its latents are small: decoded."""
    pipe = load_pipeline(inspect_model(embedded_model_path()), device="cpu", dtype=torch.float32)
    generator = torch.Generator().manual_seed(3)
    latents = pipe("a large red circle on a blue background", num_inference_steps=20, guidance_scale=5.0,
                   generator=generator, output_type="latent").images  # fmt: skip
    with torch.inference_mode():
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    truth = ((decoded[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    maker = PreviewMaker.for_pipeline(pipe, "tiny")
    preview = maker.rgb(latents)
    assert preview.shape == (64, 64, 3) and preview.dtype == np.uint8
    assert np.abs(preview.astype(np.float64) - truth).max() <= 1
    assert maker.png(latents).startswith(b"\x89PNG")


def test_a_fitted_map_serves_large_latents_of_an_unknown_vae() -> None:
    pipe = load_pipeline(inspect_model(embedded_model_path()), device="cpu", dtype=torch.float32)
    maker = PreviewMaker.for_pipeline(pipe, "tiny")
    big = torch.randn(1, 4, 40, 40, generator=torch.Generator().manual_seed(0))
    rgb = maker.rgb(big)  # 1,600 latent pixels > DECODE_MAX_PIXELS: the linear map, one pixel per latent pixel
    assert rgb.shape == (40, 40, 3) and rgb.dtype == np.uint8
    expected = torch.einsum("chw,cr->hwr", big[0], maker.factors) + maker.bias
    assert np.array_equal(rgb, ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())


def test_sd_latents_use_the_published_factors_without_a_decode() -> None:
    pipe = make_tiny_pipeline("sd1")
    maker = PreviewMaker.for_pipeline(pipe, "sd1")
    assert torch.equal(maker.factors, torch.tensor(SD1_FACTORS))
    rgb = maker.rgb(torch.zeros(1, 4, 5, 7))
    assert rgb.shape == (5, 7, 3) and (rgb == 128).all()
