"""The embedded model's pixels, pinned: the same prompt, seeds and --dtype float32 give the
images they gave before the request path was made one (sha256 of the RGB pixels, recorded with
torch 2.13.0's CPU build on an AVX512 Xeon). A change to the path that changes a pixel fails here.
Other torch builds or CPUs may round differently, so the pins apply only where they were made."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

import steady
from steady.params import GenerationRequest
from steady.request.devices import torch_build

PINS = [
    (dict(prompt="a small red circle at the top left on a blue background", seed=1234, sampler="Euler a"),
     ["06203e2df028c0b4d5babe3dab315dd4aac8400b79e93a733a1ee6c8e255b584",
      "b3542d0f07d6cce168e736d4170083c8b4e2132ae8534705d4bd2c00e76b05c5"]),
    (dict(prompt="a (green:1.3) square, [blurry]", negative_prompt="red", seed=7, sampler="DPM++ 2M Karras", steps=12),
     ["1ccf92969c42a3045ab928dc7850ee59954e5a6010554715b4abfd8784a03847",
      "df018645e5a9c156d9ee4e5957f811cba109564b4969c957461cf5f501296f69"]),
    (dict(prompt="a [circle:triangle:0.5] at the bottom right", seed=99, sampler="Euler", cfg_scale=7.0, steps=10),
     ["0eb7d5d69a77a6bcc896cb7de59c757031a1afbe3547d2cea168ccfdaf2d1e29",
      "f6c83f462a66dd7ea1b68694be5eed9f922c4b6fd1c3687d928178c0b450c695"]),
]  # fmt: skip


def _where_pinned() -> bool:
    try:
        flags = open("/proc/cpuinfo", encoding="ascii", errors="replace").read().split()
    except OSError:
        return False
    return torch_build().version == "2.13.0+cpu" and "avx512f" in flags


@pytest.mark.skipif(not _where_pinned(), reason="pins were recorded with torch 2.13.0+cpu on an AVX512 CPU")
@pytest.mark.parametrize(("request_fields", "digests"), PINS, ids=["weighted-euler-a", "emphasis-dpm", "editing-euler"])
def test_pixels_are_the_pinned_ones(request_fields, digests):
    results = steady.generate(GenerationRequest(dtype="float32", n_images=2, **request_fields))
    got = [hashlib.sha256(np.asarray(Image.open(r.path).convert("RGB")).tobytes()).hexdigest() for r in results]
    assert got == digests
