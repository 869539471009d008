"""Inpainting checkpoints (9-channel UNet: latents, mask, masked image), SD 1.x and SDXL layouts:
detected from the tensors, loaded offline with the shipped configs, run through diffusers'
inpainting pipeline with the inpainting conditioning; txt2img with one is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import steady
from steady.errors import BadInput
from steady.models.detect import inspect_model
from steady.params import GenerationRequest
from tests.fixtures.inpainting import save_tiny_inpainting_file


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inpainting-models")
    return {arch: save_tiny_inpainting_file(arch, folder / f"tiny-{arch}-inpainting.safetensors") for arch in ("sd1", "sdxl")}


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_an_inpainting_checkpoint_paints_the_mask_and_keeps_the_rest(models, sup, tmp_path, arch):
    info = inspect_model(models[arch])
    assert info.inpainting and info.arch == arch and info.overrides["unet"]["in_channels"] == 9
    init = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    init.save(tmp_path / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = steady.generate(GenerationRequest("a cat", model=str(models[arch]), steps=2, seed=1, mask_blur=0,
                                               init_image=str(tmp_path / "init.png"), mask=str(tmp_path / "mask.png")),
                             supervisor=sup)[0]  # fmt: skip
    out = np.asarray(Image.open(result.path).convert("RGB"), dtype=np.int32)
    original = np.asarray(init, dtype=np.int32)
    assert (out[:, :32] == original[:, :32]).all() and np.abs(out[:, 32:] - original[:, 32:]).mean() > 1
    assert result.params.extra["inpainting_model"] is True and result.adherence is None  # the model's scorer needs 4 channels
    # plain img2img with it (no mask): the inpainting pipeline with a white mask, the whole image
    whole = steady.generate(GenerationRequest("a cat", model=str(models[arch]), steps=2, seed=1, strength=0.5,
                                              init_image=str(tmp_path / "init.png")), supervisor=sup)[0]  # fmt: skip
    assert Image.open(whole.path).size == (64, 64)


def test_txt2img_with_an_inpainting_checkpoint_is_refused(models):
    from steady.config import settings
    from steady.jobs.runner import prepare

    with pytest.raises(BadInput) as info:
        prepare(GenerationRequest("a cat", model=str(models["sd1"])), settings())
    assert info.value.argument == "init_image" and "inpainting checkpoint" in str(info.value)


def test_a_diffusers_inpainting_folder_is_detected_and_loads(tmp_path):
    import torch
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    from steady.worker.loader import load_pipeline
    from tests.fixtures.random_model import make_tiny_components

    comps = make_tiny_components("sd1", 0)
    comps["unet"] = UNet2DConditionModel.from_config({**comps["unet"].config, "in_channels": 9})
    StableDiffusionInpaintPipeline(**comps, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False).save_pretrained(tmp_path / "inpaint")  # fmt: skip
    info = inspect_model(tmp_path / "inpaint")
    assert info.inpainting and info.arch == "sd1"
    assert load_pipeline(info, device="cpu", dtype=torch.float32).unet.config.in_channels == 9
