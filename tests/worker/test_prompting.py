"""Weighted, chunked prompt embeddings (A1111 emphasis) on the embedded model's real CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steady.models.default import embedded_model_path
from steady.models.detect import inspect_model
from steady.params import ImageParams
from steady.worker.loader import load_pipeline
from steady.worker.pipeline import render
from steady.worker.encode import encode_pair, needs_weighting


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(inspect_model(embedded_model_path()), device="cpu", dtype=torch.float32)


def test_plain_prompts_keep_diffusers_encoding(pipe) -> None:
    assert not needs_weighting(pipe, "a small red circle at the top left", "blurry")
    assert needs_weighting(pipe, "a (red:1.2) circle", "") and needs_weighting(pipe, "a circle", "x BREAK y")
    assert needs_weighting(pipe, " ".join(["red circle"] * 40), "")  # 80 tokens: more than one chunk


def test_unit_weights_give_the_same_embeddings_as_diffusers(pipe) -> None:
    ours = encode_pair(pipe, "a (red:1.0) circle on a (blue:1.0) background", "")
    theirs, _ = pipe.encode_prompt("a red circle on a blue background", "cpu", 1, False)
    assert ours.prompt.shape == theirs.shape == (1, 77, theirs.shape[-1])
    assert torch.allclose(ours.prompt, theirs, atol=1e-5)


def test_weights_change_the_weighted_tokens_and_long_prompts_are_chunked(pipe) -> None:
    plain = encode_pair(pipe, "a (red:1.0) circle", "").prompt
    strong = encode_pair(pipe, "a (red:1.6) circle", "").prompt
    changed = (strong - plain).abs().mean(dim=-1)[0]
    assert int(changed.argmax()) == 2  # BOS, "a", "red": the weighted token moves most
    long = encode_pair(pipe, " ".join(["red circle"] * 40), "a BREAK b BREAK c")
    # 80 prompt tokens make 2 chunks, the negative's two BREAKs make 3: both are padded to 3.
    assert long.prompt.shape[1] == long.negative.shape[1] == 77 * 3


def test_a_weighted_prompt_renders_and_differs_from_the_plain_one(pipe) -> None:
    def image(prompt: str) -> np.ndarray:
        params = ImageParams(prompt, "", 8, 5.0, 64, 64, 3, "Euler", 1, "t", "h", "tiny", "cpu", "float32")
        return np.asarray(render(pipe, params, "cpu").convert("RGB"), dtype=np.int16)

    plain, weighted = image("a red circle"), image("a (red:1.4) circle")
    assert plain.shape == weighted.shape == (64, 64, 3)
    assert np.abs(plain - weighted).mean() > 0.1  # the weighted path reached the image


def test_prompt_editing_swaps_the_conditioning_at_the_step_named(pipe) -> None:
    """`[red:blue:0.5]` over 8 Euler steps: the UNet sees "red" for steps 1-4 and "blue" for 5-8."""
    red, blue = (encode_pair(pipe, f"a {c} circle", "").prompt for c in ("red", "blue"))
    seen: list[str] = []

    def record(module, args, kwargs) -> None:
        cond = kwargs["encoder_hidden_states"][-1:]  # CFG batch: [negative, prompt]
        seen.append("red" if torch.allclose(cond, red, atol=1e-5) else "blue" if torch.allclose(cond, blue, atol=1e-5)
                    else "other")  # fmt: skip

    def image(prompt: str) -> np.ndarray:
        params = ImageParams(prompt, "", 8, 5.0, 64, 64, 3, "Euler", 1, "t", "h", "tiny", "cpu", "float32")
        return np.asarray(render(pipe, params, "cpu").convert("RGB"), dtype=np.int16)

    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        edited = image("a [red:blue:0.5] circle")
        assert seen == ["red"] * 4 + ["blue"] * 4
        seen.clear()
        alternating = image("a [red|blue] circle")
        assert seen == ["red", "blue"] * 4
    finally:
        handle.remove()
    plain_red, plain_blue = image("a red circle"), image("a blue circle")
    assert np.abs(edited - plain_red).mean() > 0.5 and np.abs(edited - plain_blue).mean() > 0.5
    assert np.abs(alternating - edited).mean() > 0.5
    # Switching after the last step is no switch: the same image as the plain prompt.
    assert np.abs(image("a [red:blue:8] circle") - plain_red).max() <= 1
