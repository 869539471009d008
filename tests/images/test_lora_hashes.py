"""A1111's "Lora hashes" in the parameters text: written from ImageParams.extra as A1111 writes it,
read back from anyone's."""

from __future__ import annotations

from steady.images import infotext
from steady.images.pngmeta import a1111_parameters
from steady.params import ImageParams


def params(**extra) -> ImageParams:
    return ImageParams(prompt="a cat <lora:film:0.8>, <lora:a:b,c:1>", negative_prompt="", steps=20, cfg_scale=7.0,
                       width=512, height=512, seed=1, sampler="Euler a", clip_skip=1, model_name="m",
                       model_hash="0123456789", model_arch="sd1", device="cpu", dtype="float32",
                       steady_version="0.1.0", extra=extra)  # fmt: skip


def test_written_after_the_model_as_a1111_does():
    loras = [{"name": "film", "hash": "0123456789ab", "te": 0.8, "unet": 0.8, "path": "/x/film.safetensors"},
             {"name": "a:b,c", "hash": "ba9876543210", "te": 1.0, "unet": 1.0, "path": "/x/abc.safetensors"}]  # fmt: skip
    text = a1111_parameters(params(loras=loras))
    assert text.splitlines()[0] == "a cat <lora:film:0.8>, <lora:a:b,c:1>"  # the tags stay in the prompt
    assert text.splitlines()[-1] == ('Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: '
                                     '0123456789, Model: m, Lora hashes: "film: 0123456789ab, abc: ba9876543210", '
                                     "Version: steady 0.1.0")  # fmt: skip
    assert "Lora hashes" not in a1111_parameters(params())


def test_read_back_as_written_and_as_a_mapping():
    text = ("a cat <lora:film:0.8>\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, "
            'Size: 512x512, Model hash: 0123456789, Lora hashes: "film: 0123456789ab, grain v2: ba9876543210", '
            "Version: v1.10.1")  # fmt: skip
    parsed = infotext.parse(text)
    assert parsed.params["Lora hashes"] == "film: 0123456789ab, grain v2: ba9876543210"
    assert parsed.params["lora_hashes"] == {"film": "0123456789ab", "grain v2": "ba9876543210"}
    assert infotext.parse_lora_hashes("no hash here, x:") == {}
