"""A1111's img2img image work (steady.images.masking), on pixels: resize modes, the mask's blur
and inversion, the overlay that keeps the original outside the mask, only-masked crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from steady.images import masking
from steady.params import Source


def _source(**kw):
    return Source(image="", image_hash="", **kw)


def _noise(w, h, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _half_mask(w, h):
    a = np.zeros((h, w), dtype=np.uint8)
    a[:, w // 2:] = 255  # white = repaint: the right half
    return Image.fromarray(a)


def test_resize_modes_fit_the_size_as_a1111_does():
    wide = Image.new("RGB", (80, 40), (200, 10, 10))
    for mode in (0, 1, 2):
        assert masking.resize_image(mode, wide, 64, 64).size == (64, 64)
    # crop and resize fills the square (no black bars); resize and fill stretches the edges into the gap
    cropped = np.asarray(masking.resize_image(1, wide, 64, 64))
    assert cropped[:, :, 0].min() > 150
    filled = np.asarray(masking.resize_image(2, wide, 64, 64))
    assert filled[0, 32, 0] > 150 and filled[63, 32, 0] > 150
    # a plain paste with no fill would leave black bars where resize-and-fill stretches the edges
    assert np.asarray(masking.resize_image(1, Image.new("RGB", (40, 80), (9, 200, 9)), 64, 64))[:, :, 1].min() > 150


def test_blur_matches_a_gaussian_and_keeps_the_far_field():
    mask = _half_mask(64, 64)
    blurred = np.asarray(masking.gaussian_blur(mask, 4), dtype=np.int32)
    assert blurred[:, :16].max() == 0 and blurred[:, 48:].min() == 255  # far from the edge: untouched
    row = blurred[10]
    assert 0 < row[30] < row[31] < row[32] < row[33] < 255  # a smooth ramp across the edge
    assert abs(int(row[31]) + int(row[32]) - 255) <= 2  # symmetric about it
    assert masking.gaussian_blur(mask, 0) is mask


@pytest.mark.parametrize("blur", [0, 4])
def test_outside_the_mask_the_result_is_the_original(blur):
    init, painted = _noise(64, 64, 1), _noise(64, 64, 2)
    prepared = masking.prepare(init, _half_mask(64, 64), _source(mask_blur=blur, mask="m"), 64, 64)
    out = np.asarray(masking.finish(painted, prepared), dtype=np.int32)
    band = 0 if blur == 0 else 2 * int(2.5 * blur + 0.5) + 1
    left = slice(0, 32 - band)
    assert np.abs(out[:, left] - np.asarray(init, dtype=np.int32)[:, left]).max() == 0
    right = slice(32 + band, 64)
    assert np.abs(out[:, right] - np.asarray(painted, dtype=np.int32)[:, right]).max() == 0


def test_inverted_mask_repaints_the_other_half():
    init, painted = _noise(64, 64, 1), _noise(64, 64, 2)
    prepared = masking.prepare(init, _half_mask(64, 64), _source(mask_blur=0, invert_mask=True, mask="m"), 64, 64)
    out = np.asarray(masking.finish(painted, prepared))
    assert (out[:, 32:] == np.asarray(init)[:, 32:]).all()
    assert (out[:, :32] == np.asarray(painted)[:, :32]).all()


def test_alpha_is_the_mask_when_the_mask_has_one():
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, 8:, 3] = 255  # opaque right half, black everywhere
    mask = masking.binary_mask(Image.fromarray(rgba, "RGBA"))
    assert np.asarray(mask)[:, 8:].min() == 255 and np.asarray(mask)[:, :8].max() == 0


def test_only_masked_paints_the_crop_at_full_size_and_pastes_it_back():
    init = _noise(128, 128, 3)
    mask = np.zeros((128, 128), dtype=np.uint8)
    mask[40:56, 60:76] = 255
    prepared = masking.prepare(init, Image.fromarray(mask), _source(mask_blur=0, only_masked=True,
                                                                    only_masked_padding=8, mask="m"), 64, 64)  # fmt: skip
    assert prepared.paste_to == (52, 32, 32, 32)  # 16x16 box + 8 each side, already square
    assert prepared.image.size == (64, 64) and prepared.mask.size == (64, 64)  # the crop, at the full size
    out = masking.finish(Image.new("RGB", (64, 64), (0, 255, 0)), prepared)
    assert out.size == (128, 128)  # the init image's size
    a = np.asarray(out)
    assert (a[44:52, 64:72] == (0, 255, 0)).all()  # inside the mask: the painted crop
    outside = np.ones((128, 128), dtype=bool)
    outside[40:56, 60:76] = False
    assert (a[outside] == np.asarray(init)[outside]).all()


def test_fill_paints_the_masked_area_from_its_surroundings():
    init = Image.new("RGB", (64, 64), (10, 200, 30))
    arr = np.asarray(init).copy()
    arr[:, 32:] = (255, 0, 255)
    prepared = masking.prepare(Image.fromarray(arr), _half_mask(64, 64), _source(mask_blur=0, masked_content="fill",
                                                                                  mask="m"), 64, 64)  # fmt: skip
    filled = np.asarray(prepared.image, dtype=np.int32)
    assert np.abs(filled[:, 40:] - (10, 200, 30)).max() < 20  # the magenta is gone, the green came in


def test_blank_only_masked_mask_falls_back_to_the_whole_image():
    prepared = masking.prepare(_noise(32, 32), Image.new("L", (32, 32), 0), _source(only_masked=True, mask="m"), 32, 32)
    assert prepared.paste_to is None and prepared.image.size == (32, 32)
