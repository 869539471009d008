"""--vae: a VAE file in the original or diffusers layout decodes the image, the model's own comes
back exactly after, a swap frees the VAE before it, the parameters line names it as A1111 does,
and a decode that returns NaNs is done again in float32 with a warning (NaNs injected: a CPU has
no float16 overflow)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from PIL import Image

import steady
from steady.config import settings
from steady.errors import BadInput
from steady.images.pngmeta import read_png_info
from steady.params import GenerationRequest
from tests.fixtures.vaes import save_tiny_vae

PROMPT = "a red circle"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    return save_tiny_folder("sd1", tmp_path_factory.mktemp("models") / "tiny-sd1")


def make(model, sup, **kw):
    base = dict(prompt=PROMPT, steps=2, width=32, height=32, seed=7, model=str(model))
    return steady.generate(GenerationRequest(**{**base, **kw}), supervisor=sup)


def pixels(result) -> np.ndarray:
    return np.asarray(Image.open(result.path).convert("RGB")).astype(int)


def test_vae_by_name_layouts_and_back(model, sup):
    folder = settings().vae_dir
    save_tiny_vae("sd1", folder / "grain.vae.safetensors", "ldm")
    save_tiny_vae("sd1", folder / "grain-diffusers.safetensors", "diffusers")
    [base] = make(model, sup)
    [ldm] = make(model, sup, vae="grain.vae.safetensors")
    [diff] = make(model, sup, vae="grain-diffusers")
    [own] = make(model, sup, vae="none")
    assert np.abs(pixels(ldm) - pixels(base)).max() > 10
    assert np.array_equal(pixels(ldm), pixels(diff))  # the same tensors in either layout
    assert np.array_equal(pixels(own), pixels(base))  # the model's own VAE back
    text = read_png_info(ldm.path).parameters_text
    entry = ldm.params.extra["vae"]
    assert f"VAE hash: {entry['hash']}, VAE: grain.vae.safetensors" in text and len(entry["hash"]) == 10
    assert "VAE" not in read_png_info(base.path).parameters_text
    assert "path" not in read_png_info(ldm.path).raw["steady"]
    assert ldm.params.request().vae == entry["path"]  # re-generation takes the same file


def test_auto_missing_and_wrong_family(tmp_path):
    from steady.models.detect import inspect_model
    from steady.models.vae import resolve_vae, vae_entry
    from tests.fixtures.tiny_models import save_tiny_single_file

    ckpt = save_tiny_single_file("sd1", tmp_path / "tiny.safetensors")
    info = inspect_model(ckpt)
    assert resolve_vae("auto", info, settings()) is None  # nothing beside it: the checkpoint's own
    save_tiny_vae("sd1", tmp_path / "tiny.vae.safetensors", "ldm", prefix="first_stage_model.")
    found = resolve_vae("auto", info, settings())
    assert found is not None and (found.name, found.layout) == ("tiny.vae.safetensors", "ldm")
    assert resolve_vae("none", info, settings()) is None
    save_tiny_vae("sd1", settings().vae_dir / "grain.safetensors")
    with pytest.raises(BadInput, match="closest: grain.safetensors"):
        resolve_vae("grian", info, settings())
    import torch
    from safetensors.torch import save_file

    save_file({"encoder.down.0.block.0.conv1.weight": torch.zeros(8, 8, 3, 3),
               "decoder.conv_in.weight": torch.zeros(8, 16, 3, 3)}, str(tmp_path / "flux-ae.safetensors"))  # fmt: skip
    with pytest.raises(BadInput, match="16-channel latents and the model's are 4-channel"):
        vae_entry(str(tmp_path / "flux-ae.safetensors"), info, settings(), False)
    (tmp_path / "junk.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(BadInput, match="not a VAE"):
        vae_entry(str(tmp_path / "junk.safetensors"), info, settings(), False)


def test_swap_frees_the_previous_vae_and_nan_decode_is_retried(model):
    from steady.request.check import check
    from steady.worker import recipe

    folder = settings().vae_dir
    save_tiny_vae("sd1", folder / "a.safetensors", seed=1)
    save_tiny_vae("sd1", folder / "b.safetensors", seed=2)
    held = recipe.Held()
    params = {v: check(GenerationRequest(PROMPT, steps=2, width=32, height=32, seed=3, model=str(model), vae=v,
                                         device="cpu", dtype="float32"), settings()).image_params(0)
              for v in ("none", "a", "b")}  # fmt: skip
    recipe.load(held, str(model), params["a"], False, placed_by_plan=False)
    first = weakref.ref(held.pipe.vae)
    own = held.base_vae
    recipe.load(held, str(model), params["b"], False, placed_by_plan=False)
    gc.collect()
    assert first() is None  # the VAE swapped out is gone
    recipe.load(held, str(model), params["none"], False, placed_by_plan=False)
    assert held.pipe.vae is own and held.vae_key == ""
    clean, _ = recipe.make(held, params["none"])
    warnings: list[str] = []
    retried, _ = recipe.make(held, params["none"], warnings=warnings, vae_nan_once=True)
    assert len(warnings) == 1 and "NaNs in float32; decoded again in float32" in warnings[0]
    assert np.array_equal(np.asarray(retried), np.asarray(clean))
    assert "decode" not in vars(held.pipe.vae)  # the guard is gone after the image
