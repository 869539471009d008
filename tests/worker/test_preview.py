"""The latent preview: a linear latent -> RGB map that looks like the decoded image."""

from __future__ import annotations

import numpy as np
import torch

from steady.models.default import embedded_model_path
from steady.models.detect import inspect_model
from steady.worker.loader import load_pipeline
from steady.worker.preview import SD1_FACTORS, PreviewMaker
from tests.fixtures.tiny_models import make_tiny_pipeline


def test_fitted_preview_of_the_embedded_model_matches_its_decoded_image() -> None:
    pipe = load_pipeline(inspect_model(embedded_model_path()), device="cpu", dtype=torch.float32)
    generator = torch.Generator().manual_seed(3)
    latents = pipe("a large red circle on a blue background", num_inference_steps=20, guidance_scale=5.0,
                   generator=generator, output_type="latent").images  # fmt: skip
    with torch.inference_mode():
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    scale = decoded.shape[-1] // latents.shape[-1]
    pooled = torch.nn.functional.avg_pool2d(decoded, scale)[0].permute(1, 2, 0)
    truth = ((pooled.clamp(-1, 1) + 1) * 127.5).numpy()
    maker = PreviewMaker.for_pipeline(pipe, "tiny")
    preview = maker.rgb(latents).astype(np.float64)
    assert preview.shape == truth.shape and preview.dtype == np.float64
    error = np.abs(preview - truth).mean()
    corr = np.corrcoef(preview.ravel(), truth.ravel())[0, 1]
    print(f"preview vs decoded: mean abs error {error:.1f}/255, correlation {corr:.3f}")
    assert corr > 0.85 and error < 40, (corr, error)
    # The shape is there: the red channel is highest where the decoded image is reddest.
    assert np.corrcoef(preview[..., 0].ravel(), truth[..., 0].ravel())[0, 1] > 0.8
    png = maker.png(latents)
    assert png.startswith(b"\x89PNG")


def test_sd_latents_use_the_published_factors_without_a_decode() -> None:
    pipe = make_tiny_pipeline("sd1")
    maker = PreviewMaker.for_pipeline(pipe, "sd1")
    assert torch.equal(maker.factors, torch.tensor(SD1_FACTORS))
    rgb = maker.rgb(torch.zeros(1, 4, 5, 7))
    assert rgb.shape == (5, 7, 3) and (rgb == 128).all()
