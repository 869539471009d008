"""img2img and inpainting end to end (check, queue, supervised worker, record) on the embedded
model at 64x64: steps run, size, parameters, lineage, the overlay on pixels, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

import steady
from steady.errors import BadInput
from steady.images.pngmeta import read_png_info
from steady.jobs.protocol import Progress
from steady.params import GenerationRequest


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)


@pytest.fixture(scope="module")
def first(sup, tmp_path_factory):
    """A txt2img image in the module's catalog: the init image of the tests below, made in a home of
    its own (a module fixture is made before a test's STEADY_HOME: the default is the user's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEADY_HOME", str(tmp_path_factory.mktemp("first-home")))
        return steady.generate(GenerationRequest("a red circle", steps=3, seed=7), supervisor=sup)[0]


def test_img2img_runs_n_times_strength_steps_records_and_links(sup, first):
    steps_seen: list[int] = []
    events = lambda e: steps_seen.append(e.steps) if isinstance(e, Progress) else None  # noqa: E731
    result = steady.generate(GenerationRequest("a blue square", steps=8, strength=0.5, seed=3, init_image=first.path),
                             supervisor=sup, on_event=events)[0]  # fmt: skip
    assert set(steps_seen) == {4} and len(steps_seen) == 4  # 8 x 0.5 steps ran, as in A1111
    assert Image.open(result.path).size == (64, 64)  # the init image's size
    text = read_png_info(result.path).parameters_text
    assert "Denoising strength: 0.5" in text and "Steps: 8" in text and "Mask blur" not in text
    row = sup.catalog.get_image(result.image_id)
    assert row.init_image_id == first.image_id and row.init_hash == row.params.source.image_hash
    assert row.params.source.image_hash == sup.catalog.get_image(first.image_id).content_hash
    run = sup.catalog.get_run(result.run_id)
    assert run.from_image_id == first.image_id
    # the same seed and strength again: the same pixels; another strength: others
    again = steady.generate(GenerationRequest("a blue square", steps=8, strength=0.5, seed=3, init_image=first.path),
                            supervisor=sup)[0]  # fmt: skip
    assert (pixels(again.path) == pixels(result.path)).all()


def test_strength_zero_is_the_init_image_through_the_vae(sup, first):
    kept = steady.generate(GenerationRequest("a blue square", steps=4, strength=0.0, seed=3, init_image=first.path),
                           supervisor=sup)[0]  # fmt: skip
    changed = steady.generate(GenerationRequest("a blue square", steps=4, strength=1.0, seed=3, init_image=first.path),
                              supervisor=sup)[0]  # fmt: skip
    original = pixels(first.path)
    near = np.abs(pixels(kept.path) - original).mean()
    far = np.abs(pixels(changed.path) - original).mean()
    assert near < far / 2, (near, far)


def test_inpainting_keeps_the_original_outside_the_mask(sup, first, tmp_path):
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255  # repaint the right half
    Image.fromarray(mask).save(tmp_path / "mask.png")
    for content in ("original", "latent noise"):
        result = steady.generate(GenerationRequest("a blue square", steps=4, strength=0.9, seed=5, init_image=first.path,
                                                   mask=str(tmp_path / "mask.png"), masked_content=content),
                                 supervisor=sup)[0]  # fmt: skip
        out, original = pixels(result.path), pixels(first.path)
        band = 2 * int(2.5 * 4 + 0.5) + 1  # the blur's reach (Mask blur: 4)
        assert np.abs(out[:, : 32 - band] - original[:, : 32 - band]).max() == 0  # A1111's overlay: the original
        assert np.abs(out[:, 32 + band:] - original[:, 32 + band:]).mean() > 1  # repainted
        text = read_png_info(result.path).parameters_text
        assert "Mask blur: 4" in text and "Denoising strength: 0.9" in text
        assert ("Masked content: latent noise" in text) == (content == "latent noise")


def test_only_masked_on_a_larger_image_keeps_its_size(sup, first, tmp_path):
    big = Image.open(first.path).resize((96, 96))
    big.save(tmp_path / "big.png")
    mask = np.zeros((96, 96), dtype=np.uint8)
    mask[30:50, 30:50] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = steady.generate(GenerationRequest("a blue square", steps=3, seed=5, init_image=str(tmp_path / "big.png"),
                                               mask=str(tmp_path / "mask.png"), only_masked=True, width=64, height=64,
                                               only_masked_padding=4, mask_blur=0), supervisor=sup)[0]  # fmt: skip
    out = pixels(result.path)
    assert out.shape == (96, 96, 3)
    outside = np.ones((96, 96), dtype=bool)
    outside[30:50, 30:50] = False
    assert (out[outside] == pixels(tmp_path / "big.png")[outside]).all()
    assert "Inpaint area: Only masked, Masked area padding: 4" in read_png_info(result.path).parameters_text


@pytest.mark.parametrize("field, value, why", [
    ("init_image", "not-an-image.png", "not an image"),
    ("init_image", "missing.png", "no such file"),
    ("init_image", "bomb.png", "decompression bomb is refused unread"),
    ("strength", 1.5, "between 0.0 and 1.0"),
    ("mask", "mask.png", "needs an init image"),
    ("resize_mode", "stretch", "must be one of"),
    ("mask_blur", -1, "between 0 and 64"),
])  # fmt: skip
def test_bad_input_names_the_argument_and_writes_nothing(tmp_path, monkeypatch, field, value, why):
    from steady.config import settings
    from steady.jobs.runner import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-an-image.png").write_text("hello")
    Image.new("1", (5000, 5000)).save(tmp_path / "bomb.png")  # 25 megapixels in a few kilobytes
    Image.new("L", (64, 64)).save(tmp_path / "mask.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "init.png")
    kw = {"init_image": "init.png"} if field not in ("init_image", "mask") else {}
    with pytest.raises(BadInput) as info:
        prepare(GenerationRequest("x", **kw, **{field: value}), settings())
    assert info.value.argument == field and why in str(info.value)
    assert not settings().inputs_dir.exists() and not settings().db_path.exists()


def test_mask_of_another_size_is_resized_and_said(tmp_path):
    from steady.config import settings
    from steady.jobs.runner import prepare

    Image.new("RGB", (64, 48), (1, 2, 3)).save(tmp_path / "init.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "mask.png")
    resolved = prepare(GenerationRequest("x", init_image=str(tmp_path / "init.png"), mask=str(tmp_path / "mask.png")),
                       settings())  # fmt: skip
    assert (resolved.request.width, resolved.request.height) == (64, 48)
    assert any("the mask is 32x32" in w and "resized" in w for w in resolved.warnings())
    assert len(list(settings().inputs_dir.iterdir())) == 2  # both kept by hash


def test_hires_fix_is_a_second_img2img_pass_at_the_larger_size(sup):
    seen: list[tuple[int, int]] = []
    events = lambda e: seen.append((e.step, e.steps)) if isinstance(e, Progress) else None  # noqa: E731
    result = steady.generate(GenerationRequest("a red circle", steps=4, seed=9, hires_scale=2, hires_steps=4),
                             supervisor=sup, on_event=events)[0]  # fmt: skip
    assert Image.open(result.path).size == (128, 128)
    assert seen == [(i, 6) for i in range(1, 7)]  # 4 first-pass steps, then 4 x 0.7 = 2 of the second
    text = read_png_info(result.path).parameters_text
    assert "Size: 64x64" in text and "Denoising strength: 0.7, Hires upscale: 2" in text and "Hires upscaler: Latent" in text
    # strength 0 with nearest: the first pass, enlarged, and nothing else
    first = steady.generate(GenerationRequest("a red circle", steps=4, seed=9), supervisor=sup)[0]
    kept = steady.generate(GenerationRequest("a red circle", steps=4, seed=9, hires_width=128, hires_upscaler="nearest",
                                             hires_strength=0.0), supervisor=sup)[0]  # fmt: skip
    expected = np.asarray(Image.open(first.path).convert("RGB").resize((128, 128), Image.Resampling.NEAREST), np.int32)
    assert (pixels(kept.path) == expected).all()
    assert "Hires resize: 128x128" in read_png_info(kept.path).parameters_text


def test_hires_is_planned_for_the_larger_pass_and_checked():
    from steady.config import settings
    from steady.jobs.runner import prepare

    from steady.request.hires import hires_note

    resolved = prepare(GenerationRequest("x", width=64, height=48, hires_scale=2.5), settings())
    assert (resolved.hires.width, resolved.hires.height) == (160, 120)
    assert (resolved.memory.width, resolved.memory.height) == (160, 120)
    note = hires_note(resolved.hires, 64, 48, resolved.memory)
    assert "64x48, then 160x120 by latent at strength 0.7 (14 of 20 steps)" in note
    assert f"memory planned for the 160x120 pass ({resolved.memory.strategy}" in note
    for kw, field in (({"hires_scale": 2, "init_image": "x.png"}, "hires_scale"),
                      ({"hires_upscaler": "4x-Nothing"}, "hires_upscaler"),
                      ({"hires_scale": 4.5}, "hires_scale"),
                      ({"hires_strength": 1.2, "hires_scale": 2}, "hires_strength")):  # fmt: skip
        with pytest.raises(BadInput) as info:
            prepare(GenerationRequest("x", **{"hires_scale": 2, **kw}), settings())
        assert info.value.argument == field


@pytest.mark.skipif(importlib.util.find_spec("spandrel") is None,
                    reason="spandrel is not installed (pip install 'steady[upscalers]')")
def test_hires_with_an_upscaler_model_from_the_upscaler_folder(sup):
    from steady.config import settings
    from tests.fixtures.upscalers import save_tiny_compact

    save_tiny_compact(settings().upscaler_dir / "2x-Tiny.safetensors", scale=2)
    result = steady.generate(GenerationRequest("a red circle", steps=2, seed=9, hires_scale=2, hires_upscaler="2x-tiny",
                                               hires_strength=0.5), supervisor=sup)[0]  # fmt: skip
    assert Image.open(result.path).size == (128, 128)
    assert "Hires upscaler: 2x-Tiny" in read_png_info(result.path).parameters_text
    assert result.params.hires.upscaler_path.endswith("2x-Tiny.safetensors")
