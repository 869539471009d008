"""The OpenVINO backend (steady.worker.openvino_unet): the UNet converted once to an IR under
STEADY_HOME/cache/openvino, read back by later starts without converting, keyed by the LoRA set,
and an image that is torch's image of the same seed up to the backend's rounding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("openvino")

from openvino_telemetry.utils.sender import TelemetrySender
from PIL import Image

import steady
from steady.config import settings
from steady.images.pngmeta import read_png_info
from steady.params import GenerationRequest
from steady.request.openvino import IR_NAME, ir_dir
from steady.worker import openvino_unet
from steady.worker.direct import DirectRenderer
from steady.worker.openvino_unet import OvUNet
from tests.fixtures.tiny_models import save_tiny_folder

PROMPT = "a small red circle at the top left on a blue background"
# Mean absolute pixel difference (0-255) allowed between the OpenVINO and the torch image of one
# seed on the embedded model: measured over 8 seeds at 20 steps, 0.00-0.0001 in float32 and
# 0.25-0.30 in bfloat16 (each rounds differently; docs/speed.md).
MEAN_PIXEL_DIFF = {"float32": 0.05, "bfloat16": 1.5}


def _image(renderer: DirectRenderer, seed: int = 1234) -> np.ndarray:
    return np.asarray(renderer.image(PROMPT, seed).convert("RGB")).astype(float)


@pytest.mark.parametrize("dtype", ["bfloat16", pytest.param("float32", marks=pytest.mark.slow)])
def test_the_ir_is_written_once_then_read_by_later_starts_and_matches_torch(dtype, monkeypatch, tmp_path):
    torch_image = _image(DirectRenderer.load(GenerationRequest(PROMPT, dtype=dtype, steps=4)))
    # Offline: the conversion sends nothing (OpenVINO's telemetry would, from a child process, when
    # no consent file in the user's home says no).
    sent = []
    with monkeypatch.context() as m:
        m.setattr(TelemetrySender, "send", lambda self, *a, **k: sent.append(a))
        first = DirectRenderer.load(GenerationRequest(PROMPT, dtype=dtype, steps=4, backend="openvino"))
        image = _image(first)  # the first image converts
    assert sent == []
    assert isinstance(first.pipe.unet, OvUNet) and first.held.ov_stats.converted_s > 0
    where = ir_dir(settings().cache_dir, first.resolved.base_params())
    written = (where / IR_NAME).stat().st_mtime_ns
    assert not [p for p in where.parent.iterdir() if p.name.endswith(".tmp")]  # the temporary folder was renamed
    diff = np.abs(image - torch_image).mean()
    assert diff < MEAN_PIXEL_DIFF[dtype], diff

    # A worker started for a generation reads that IR: the same pixels, the backend recorded.
    [result] = steady.generate(GenerationRequest(PROMPT, dtype=dtype, steps=4, seed=1234, backend="openvino",
                                                 out_dir=str(tmp_path)))  # fmt: skip
    assert result.params.backend == "openvino" and read_png_info(result.path).image_params().backend == "openvino"
    assert np.abs(np.asarray(Image.open(result.path).convert("RGB")).astype(float) - image).mean() == 0.0
    assert (where / IR_NAME).stat().st_mtime_ns == written

    # Another start in this process, where converting again would fail.
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_unet, "convert", no_conversion)
    second = DirectRenderer.load(GenerationRequest(PROMPT, dtype=dtype, steps=4, backend="openvino"))
    assert np.abs(_image(second) - image).mean() == 0.0 and second.held.ov_stats.converted_s == 0.0


def test_an_sdxl_model_runs_on_openvino_as_on_torch(tmp_path):
    """SDXL's added conditioning (pooled prompt, size ids) goes through the IR, and the pipeline's
    check of its width reads the OpenVINO UNet (a tiny random-weight SDXL folder)."""
    folder = save_tiny_folder("sdxl", tmp_path / "tiny-xl")
    request = GenerationRequest(PROMPT, model=str(folder), dtype="float32", steps=3, width=64, height=64)
    torch_image = _image(DirectRenderer.load(request))
    on_ov = DirectRenderer.load(dataclasses.replace(request, backend="openvino"))
    image = _image(on_ov)
    assert isinstance(on_ov.pipe.unet, OvUNet) and on_ov.held.ov_stats.converted_s > 0
    assert {name for key in on_ov.pipe.unet.compiled for name, _ in key} >= {"text_embeds", "time_ids"}
    diff = np.abs(image - torch_image).mean()
    assert diff < MEAN_PIXEL_DIFF["float32"], diff


def test_a_lora_changes_the_cache_key():
    params = DirectRenderer.load(GenerationRequest(PROMPT, steps=1)).resolved.base_params()
    lora = {"name": "x", "hash": "abcdef0123", "te": 1.0, "unet": 0.8, "path": "/x.safetensors"}
    base = ir_dir(settings().cache_dir, params)
    with_lora = ir_dir(settings().cache_dir, dataclasses.replace(params, extra={"loras": [lora]}))
    other_weight = ir_dir(settings().cache_dir, dataclasses.replace(params, extra={"loras": [{**lora, "unet": 0.5}]}))
    text_only = ir_dir(settings().cache_dir, dataclasses.replace(params, extra={"loras": [{**lora, "unet": 0.0}]}))
    assert len({base, with_lora, other_weight}) == 3
    assert text_only == base  # a LoRA on the text encoder only leaves the UNet as it was
