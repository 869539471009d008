"""The generation schema: every bad value is refused with the argument and the value named."""

import pytest

from steady.errors import BadInput
from steady.params import SAMPLERS, GenerationRequest, ImageParams, canonical_sampler


def test_defaults_pass():
    request = GenerationRequest(prompt="a red circle").check()
    assert request.sampler == "Euler a"


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("steps", 0, "steps=0"),
        ("steps", 151, "steps=151"),
        ("cfg_scale", -1.0, "cfg_scale=-1.0"),
        ("cfg_scale", 31, "cfg_scale=31"),
        ("width", 513, "multiple of 8"),
        ("height", 4104, "height=4104"),
        ("width", 0, "width=0"),
        ("seed", -2, "seed=-2"),
        ("seed", 2**32, "seed=4294967296"),
        ("sampler", "Euler z", "sampler='Euler z'"),
        ("clip_skip", 0, "clip_skip=0"),
        ("device", "tpu", "device='tpu'"),
        ("dtype", "int8", "dtype='int8'"),
        ("steps", "20", "whole number"),
    ],
)
def test_out_of_range_is_named(field, value, needle):
    request = GenerationRequest(prompt="x", **{field: value})
    with pytest.raises(BadInput) as info:
        request.check()
    assert info.value.argument == field
    assert needle in str(info.value)


def test_empty_prompt_without_negative_is_refused():
    with pytest.raises(BadInput, match="prompt"):
        GenerationRequest(prompt="  ").check()
    GenerationRequest(prompt="", negative_prompt="blurry").check()


def test_run_cap_explains_why_and_how():
    with pytest.raises(BadInput) as info:
        GenerationRequest(prompt="x", n_images=31).check()
    message = str(info.value)
    assert "variety saturates" in message and "--max-images" in message
    GenerationRequest(prompt="x", n_images=31, max_images=40).check()


@pytest.mark.parametrize("alias,name", [("euler_ancestral", "Euler a"), ("k_euler_a", "Euler a"),
                                        ("dpmpp_2m_karras", "DPM++ 2M Karras"), ("dpm++ sde karras", "DPM++ SDE Karras"),
                                        ("uni_pc", "UniPC"), ("EULER", "Euler")])
def test_sampler_aliases(alias, name):
    assert canonical_sampler(alias) == name


def test_image_params_round_trip_and_reproduce():
    params = ImageParams("p", "n", 20, 7.0, 64, 64, 5, "Euler", 2, "m", "abcdef0123", "sd1", "cpu", "float32")
    again = ImageParams.from_dict(params.to_dict() | {"unknown_future_field": 1})
    assert again == params
    request = again.request()
    assert (request.seed, request.width, request.clip_skip) == (5, 64, 2)
    assert len(SAMPLERS) == 9
