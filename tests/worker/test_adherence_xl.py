"""The model's own adherence score on SDXL: the UNet gets the pooled prompt and the size
conditioning, the unconditional side is zeros (tiny random-weight SDXL pipeline)."""

from __future__ import annotations

import math

import torch

from steady.worker.adherence import DEFAULT_TIMESTEPS, AdherenceScorer
from tests.fixtures.tiny_models import make_tiny_pipeline


def test_sdxl_images_get_a_reproducible_score_from_the_conditioning_sdxl_expects() -> None:
    pipe = make_tiny_pipeline("sdxl")
    scorer = AdherenceScorer(pipe)
    assert scorer.supported
    latents = torch.randn(1, 4, 8, 16, generator=torch.Generator().manual_seed(0))  # a wide image
    h, w = 8.0 * pipe.vae_scale_factor, 16.0 * pipe.vae_scale_factor
    seen: list[dict] = []

    def record(module, args, kwargs) -> None:
        seen.append({k: v.clone() for k, v in kwargs["added_cond_kwargs"].items()} | {"ctx": kwargs["encoder_hidden_states"]})

    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        red = scorer.score(latents, None, "a red circle")
    finally:
        handle.remove()
    assert isinstance(red, float) and math.isfinite(red)
    assert len(seen) == len(DEFAULT_TIMESTEPS)
    _, _, pooled, _ = pipe.encode_prompt("a red circle", device="cpu", do_classifier_free_guidance=False)
    for call in seen:
        assert not call["ctx"][0].any() and not call["text_embeds"][0].any()  # unconditional: zeros
        assert torch.allclose(call["text_embeds"][1:], pooled, atol=1e-6)
        assert call["time_ids"].tolist() == [[h, w, 0.0, 0.0, h, w]] * 2  # (h, w), no crop, (h, w)
    assert scorer.score(latents, None, "a red circle") == red
    assert scorer.score(latents, None, "a blue square") != red
