"""LoRAs merged into the weights (steady.worker.lorafuse): on a small model the shipped LCM-LoRA is
merged, its image is the unmerged one within rounding, and taking it off gives the base pixels back
exactly; a model over the copy limit keeps the adapters unmerged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from steady.params import GenerationRequest
from steady.worker import lorafuse, recipe
from steady.worker.direct import DirectRenderer


@pytest.fixture(scope="module")
def renderer():
    request = GenerationRequest(prompt="a red circle <lora:tiny-lcm:1>", steps=4, cfg_scale=1.0, sampler="LCM")
    return DirectRenderer.load(request)


def _image(renderer, params) -> np.ndarray:
    recipe.adapt(renderer.held, params)
    return np.asarray(recipe.make(renderer.held, params)[0].convert("RGB")).astype(int)


def _layers_in_file() -> int:
    from safetensors import safe_open

    from steady.models.loras import shipped_lora_dir

    with safe_open(str(shipped_lora_dir() / "tiny-lcm.safetensors"), "np") as f:
        return sum(1 for k in f.keys() if k.endswith(".lora_down.weight"))


def _peft_layers(pipe) -> tuple[int, int]:
    """The UNet's peft layers in place, and how many of them are merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in pipe.unet.modules() if isinstance(m, BaseTunerLayer)]
    return len(layers), sum(1 for m in layers if m.merged)


def test_merged_image_matches_unmerged_and_the_base_comes_back_exactly(renderer, monkeypatch):
    with_lora = dataclasses.replace(renderer.resolved.base_params(), seed=5)
    plain = dataclasses.replace(with_lora, extra={**with_lora.extra, "loras": []})
    base = _image(renderer, plain)
    merged = _image(renderer, with_lora)
    # Every layer tiny-lcm adapts is merged and its peft wrapper out of the module tree.
    assert renderer.held.fused.signature and len(renderer.held.fused.wrappers) == _layers_in_file()
    assert _peft_layers(renderer.pipe) == (0, 0)
    assert all(layer.merged for _, _, layer in renderer.held.fused.wrappers)
    assert np.array_equal(_image(renderer, with_lora), merged)  # the same LoRA again: still merged, same pixels
    assert np.array_equal(_image(renderer, plain), base)  # off: the base weights restored bit for bit
    assert not renderer.held.fused.signature and _peft_layers(renderer.pipe) == (0, 0)  # adapters unloaded
    monkeypatch.setattr(lorafuse, "COPY_LIMIT", 0)  # over the limit: the adapters run unmerged
    unmerged = _image(renderer, with_lora)
    assert not renderer.held.fused.signature and _peft_layers(renderer.pipe) == (_layers_in_file(), 0)  # unmerged, in place
    assert not np.array_equal(merged, base)
    # The merged weights' rounding only: a few levels of 255, a small part of what the LoRA changes.
    rounding, lora = np.abs(unmerged - merged).mean(), np.abs(merged - base).mean()
    assert rounding < 4.0 and rounding < lora / 4, (rounding, lora)
    monkeypatch.undo()
    half = dataclasses.replace(with_lora, extra={**with_lora.extra, "loras": [
        {**e, "unet": 0.5, "te": 0.5} for e in with_lora.extra["loras"]]})  # fmt: skip
    halfway = _image(renderer, half)  # a new weight: restored, then merged at 0.5
    assert renderer.held.fused.signature and not np.array_equal(halfway, merged)
    assert np.array_equal(_image(renderer, plain), base)
