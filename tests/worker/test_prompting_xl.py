"""A1111 emphasis, BREAK, long prompts and prompt editing on SDXL (two text encoders, pooled
prompt), on a tiny random-weight SDXL pipeline with the real CLIP tokenizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steady.params import ImageParams
from steady.worker.pipeline import render
from steady.worker.encode import encode_pair, needs_weighting, supported
from tests.fixtures.tiny_models import make_tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline("sdxl")


def params(prompt: str, negative: str = "", steps: int = 6) -> ImageParams:
    return ImageParams(prompt, negative, steps, 5.0, 64, 64, 3, "Euler", 1, "t", "h", "tiny", "cpu", "float32")


def test_sdxl_is_weighted_and_plain_prompts_keep_diffusers_encoding(pipe) -> None:
    assert supported(pipe)
    assert not needs_weighting(pipe, "a red circle", "blurry")
    assert needs_weighting(pipe, "a (red:1.2) circle", "") and needs_weighting(pipe, "a [red:blue:0.5] circle", "")


def test_unit_weights_give_diffusers_sdxl_embeddings(pipe) -> None:
    ours = encode_pair(pipe, "a (red:1.0) circle on a (blue:1.0) background", "(blurry:1.0) text")
    pe, npe, pooled, npooled = pipe.encode_prompt("a red circle on a blue background", device="cpu",
                                                  negative_prompt="blurry text")  # fmt: skip
    # both encoders' penultimate layers, side by side: 32 (CLIP-L) + 32 (OpenCLIP-G) in the tiny model
    assert ours.prompt.shape == pe.shape == (1, 77, 64)
    assert torch.allclose(ours.prompt, pe, atol=1e-5) and torch.allclose(ours.negative, npe, atol=1e-5)
    assert torch.allclose(ours.pooled, pooled, atol=1e-5) and torch.allclose(ours.negative_pooled, npooled, atol=1e-5)
    empty = encode_pair(pipe, "a (red:1.0) circle", "")
    _, npe0, _, npooled0 = pipe.encode_prompt("a red circle", device="cpu")
    assert not empty.negative.any() and not empty.negative_pooled.any()  # zeros, as diffusers does for SDXL
    assert torch.equal(empty.negative, npe0) and torch.equal(empty.negative_pooled, npooled0)


def test_weights_move_the_weighted_token_in_both_encoders_and_long_prompts_chunk(pipe) -> None:
    plain = encode_pair(pipe, "a (red:1.0) circle", "")
    strong = encode_pair(pipe, "a (red:1.6) circle", "")
    for half in (slice(0, 32), slice(32, 64)):  # CLIP-L, then OpenCLIP-G
        changed = (strong.prompt - plain.prompt)[0, :, half].abs().mean(dim=-1)
        assert int(changed.argmax()) == 2  # BOS, "a", "red"
    assert torch.equal(strong.pooled, plain.pooled)  # A1111: the pooled prompt is not weighted
    long = encode_pair(pipe, " ".join(["red circle"] * 40), "a BREAK b BREAK c")
    assert long.prompt.shape[1] == long.negative.shape[1] == 77 * 3
    first_chunk = encode_pair(pipe, " ".join(["red circle"] * 37) + " (red:1.0)", "")  # 75 tokens: one chunk
    assert torch.allclose(long.pooled, first_chunk.pooled, atol=1e-5)  # pooled of the first chunk


def test_sdxl_prompt_editing_swaps_prompt_and_pooled_prompt_at_the_step_named(pipe) -> None:
    red, blue = (encode_pair(pipe, f"a {c} circle", "") for c in ("red", "blue"))
    seen: list[str] = []

    def which(cond: torch.Tensor, pooled: torch.Tensor) -> str:
        for name, e in (("red", red), ("blue", blue)):
            if torch.allclose(cond, e.prompt, atol=1e-5) and torch.allclose(pooled, e.pooled, atol=1e-5):
                return name
        return "other"

    def record(module, args, kwargs) -> None:
        seen.append(which(kwargs["encoder_hidden_states"][-1:], kwargs["added_cond_kwargs"]["text_embeds"][-1:]))

    def image(prompt: str) -> np.ndarray:
        return np.asarray(render(pipe, params(prompt, steps=6), "cpu").convert("RGB"), dtype=np.int16)

    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        image("a [red:blue:0.5] circle")
        assert seen == ["red"] * 3 + ["blue"] * 3
        seen.clear()
        image("a [red|blue] circle")
        assert seen == ["red", "blue"] * 3
    finally:
        handle.remove()


def test_a_weighted_sdxl_prompt_renders_and_differs_from_the_plain_one(pipe) -> None:
    plain = np.asarray(render(pipe, params("a red circle"), "cpu").convert("RGB"), dtype=np.int16)
    weighted = np.asarray(render(pipe, params("a (red:1.5) circle"), "cpu").convert("RGB"), dtype=np.int16)
    assert plain.shape == weighted.shape == (64, 64, 3)
    assert np.abs(plain - weighted).mean() > 0.1
