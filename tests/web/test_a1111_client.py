"""The A1111 API subset, driven by an unmodified third-party client (webuiapi from PyPI)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import webuiapi
from PIL import Image

from tests.fixtures.tiny_models import save_tiny_folder
from tests.web.conftest import RunningServer, running_server


@pytest.fixture(scope="module")
def a1111(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, webuiapi.WebUIApi]]:
    home = tmp_path_factory.mktemp("a1111-home")
    save_tiny_folder("sd1", home / "models" / "random-sd1")
    with running_server(home) as server:
        yield server, webuiapi.WebUIApi(host="127.0.0.1", port=server.port)


def test_txt2img_returns_base64_pngs_parameters_and_info(a1111) -> None:
    server, api = a1111
    result = api.txt2img(prompt="a green circle", negative_prompt="blurry", width=64, height=64, steps=5,
                         cfg_scale=5, seed=1234, batch_size=2, n_iter=1, sampler_name="Euler a")  # fmt: skip
    assert len(result.images) == 2 and result.images[0].size == (64, 64)
    assert result.info["all_seeds"] == [1234, 1235] and result.info["seed"] == 1234
    assert result.info["sd_model_name"] == "steady-tiny" and len(result.info["infotexts"]) == 2
    assert "Seed: 1234" in result.info["infotexts"][0] and "Negative prompt: blurry" in result.info["infotexts"][0]
    assert result.parameters["prompt"] == "a green circle"
    # The images are the catalog's files, byte for byte.
    with server.client() as client:
        record = client.get(f"/api/images/{result.info['image_ids'][0]}").json()
    with open(record["path"], "rb") as handle:
        assert handle.read() == base64.b64decode(result.json["images"][0])
    # The same request again gives the same pixels (seeded).
    again = api.txt2img(prompt="a green circle", negative_prompt="blurry", width=64, height=64, steps=5,
                        cfg_scale=5, seed=1234, batch_size=1)  # fmt: skip
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[0]))


def test_models_options_and_switching_the_checkpoint(a1111) -> None:
    server, api = a1111
    names = api.util_get_model_names()
    assert any(n.startswith("steady-tiny [") for n in names) and any(n.startswith("random-sd1 [") for n in names)
    assert api.util_get_current_model().startswith("steady-tiny")
    api.util_set_model("random-sd1")
    assert api.util_get_current_model().startswith("random-sd1")
    result = api.txt2img(prompt="anything", width=64, height=64, steps=2, seed=3)
    assert result.info["sd_model_name"] == "random-sd1"
    api.util_set_model("steady-tiny")
    assert api.txt2img(prompt="a red square", width=64, height=64, steps=2, seed=3).info["sd_model_name"] == "steady-tiny"
    reply = httpx.post(server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "no-such-model"})
    assert reply.status_code == 422 and reply.json()["argument"] == "sd_model_checkpoint"


def test_samplers_and_png_info(a1111) -> None:
    _, api = a1111
    samplers = api.util_get_sampler_names()
    assert "Euler a" in samplers and "DPM++ 2M Karras" in samplers
    result = api.txt2img(prompt="a blue triangle", width=64, height=64, steps=3, seed=99, scheduler="Karras",
                         sampler_name="DPM++ 2M")  # fmt: skip
    assert result.info["sampler_name"] == "DPM++ 2M Karras"
    info = api.png_info(result.images[0])
    assert info.info.startswith("a blue triangle") and "Seed: 99" in info.info
    assert info.json["parameters"]["seed"] == 99
    assert {"LCM", "TCD", "DPM++ SDE", "DPM++ 2M SDE Karras"} <= set(samplers)
    assert "sgm_uniform" in [s["name"] for s in api.get_schedulers()]
    turbo = api.txt2img(prompt="a blue triangle", width=64, height=64, steps=2, seed=99, scheduler="SGM Uniform",
                        sampler_name="Euler a")  # fmt: skip
    assert turbo.info["sampler_name"] == "Euler a SGM Uniform"
    assert "Sampler: Euler a SGM Uniform," in api.png_info(turbo.images[0]).info  # A1111 1.9+ reads it back split


def test_progress_and_interrupt_during_a_long_request(a1111) -> None:
    _, api = a1111
    finished: dict = {}

    def long_request() -> None:
        finished["result"] = api.txt2img(prompt="a slow circle", width=64, height=64, steps=150, batch_size=4, seed=5)

    worker = threading.Thread(target=long_request, daemon=True)
    worker.start()
    seen = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] > 2:
            seen = progress
            break
        time.sleep(0.1)
    assert seen is not None and 0 < seen["progress"] < 1 and seen["state"]["job_count"] >= 1
    assert seen["state"]["sampling_steps"] == 150 and seen["eta_relative"] > 0
    if seen["current_image"]:
        Image.open(io.BytesIO(base64.b64decode(seen["current_image"]))).verify()
    api.interrupt()
    worker.join(60)
    assert not worker.is_alive()
    assert len(finished["result"].images) < 4 and finished["result"].info["state"] == "cancelled"
    assert api.get_progress()["state"]["job_count"] == 0


def test_unsupported_features_and_bad_values_are_refused_by_name(a1111) -> None:
    server, _ = a1111
    for body, argument in [({"prompt": "x", "enable_hr": True, "hr_scale": 9}, "hires_scale"),
                           ({"prompt": "x", "enable_hr": True, "hr_sampler_name": "DDIM"}, "hr_sampler_name"),
                           ({"prompt": "x", "enable_hr": True, "hr_upscaler": "Bogus"}, "hires_upscaler"),
                           ({"prompt": "x", "script_name": "x/y/z plot"}, "script_name"),
                           ({"prompt": "x", "sampler_name": "Bogus"}, "sampler"),
                           ({"prompt": "x", "width": 63}, "width"),
                           ({"prompt": "x", "scheduler": "Polyexponential"}, "scheduler")]:  # fmt: skip
        reply = httpx.post(server.url + "/sdapi/v1/txt2img", json=body, timeout=30)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["argument"] == argument


def test_png_info_of_a_foreign_image(a1111, tmp_path: Path) -> None:
    server, _ = a1111
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("parameters", "a castle\nNegative prompt: fog\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 6, Seed: 42, Size: 512x768")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=meta)
    payload = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    reply = httpx.post(server.url + "/sdapi/v1/png-info", json={"image": payload}).json()
    assert reply["info"].startswith("a castle") and reply["parameters"]["seed"] == 42
    assert reply["parameters"]["negative_prompt"] == "fog" and "parameters" in reply["items"]


def test_img2img_and_inpainting_through_the_client(a1111) -> None:
    server, api = a1111
    init = api.txt2img(prompt="a red circle", width=64, height=64, steps=3, seed=11).images[0]
    result = api.img2img(images=[init], prompt="a blue circle", width=64, height=64, steps=8, seed=5,
                         denoising_strength=0.5)  # fmt: skip
    assert result.images[0].size == (64, 64)
    assert result.info["denoising_strength"] == 0.5 and "Denoising strength: 0.5" in result.info["infotexts"][0]
    assert result.parameters["init_images"] is None  # as A1111: not echoed unless include_init_images
    with server.client() as client:
        record = client.get(f"/api/images/{result.info['image_ids'][0]}").json()
    assert record["params"]["source"]["strength"] == 0.5 and len(record["init_hash"]) == 64
    # inpainting, the right half: the left half stays the image that was sent, pixel for pixel
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    painted = api.img2img(images=[init], mask_image=Image.fromarray(mask), prompt="a blue circle", width=64, height=64,
                          steps=4, seed=5, denoising_strength=0.9, mask_blur=0, inpaint_full_res=False,
                          inpainting_fill=1)  # fmt: skip
    out, original = np.asarray(painted.images[0].convert("RGB"), int), np.asarray(init.convert("RGB"), int)
    assert (out[:, :32] == original[:, :32]).all() and np.abs(out[:, 32:] - original[:, 32:]).mean() > 1
    assert "Mask blur" not in painted.info["infotexts"][0]  # blur 0: A1111 leaves it out


def _png_b64(size: int) -> str:
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_img2img_bad_input_is_a_4xx_naming_the_field_and_keeps_nothing(a1111) -> None:
    server, _ = a1111
    inputs = server.home / "inputs"
    before = sorted(inputs.iterdir()) if inputs.exists() else []
    big = _png_b64(1024)  # some 4 MiB of base64: past the 1 MiB of other endpoints, within the 32 MiB of these
    assert 1 << 20 < len(big) < 32 << 20
    body = {"prompt": "x", "width": 64, "height": 64, "steps": 2}
    with server.client() as client:
        for extra, field in (({"init_images": [big], "denoising_strength": 1.5}, "strength"),
                             ({"init_images": [base64.b64encode(b"not an image").decode()]}, "init_images.0"),
                             ({"init_images": ["%%%"]}, "init_images.0"),
                             ({"init_images": [big], "mask": "bm90IGFuIGltYWdl"}, "mask"),
                             ({"init_images": [big], "inpainting_fill": 7}, "inpainting_fill"),
                             ({"init_images": []}, "init_images")):  # fmt: skip
            answer = client.post("/sdapi/v1/img2img", json={**body, **extra})
            assert answer.status_code == 422, (field, answer.text)
            assert answer.json()["argument"] == field
        # the same 4 MiB body is too large for txt2img; 33 MiB is too large for img2img too
        assert client.post("/sdapi/v1/txt2img", json={**body, "init_images": [big]}).status_code == 413
        huge = client.post("/sdapi/v1/img2img", content=b"{" + b" " * (33 << 20) + b"}",
                           headers={"content-type": "application/json"})  # fmt: skip
        assert huge.status_code == 413 and huge.json()["argument"] == "body"
        # our API: an upload, then a run that names it; a path is refused
        ref = client.post("/api/inputs", json={"image": _png_b64(64)}).json()["ref"]
        assert ref.startswith("sha256:")
        refused = client.post("/api/generate", json={"prompt": "x", "init_image": "/etc/passwd"})
        assert refused.status_code == 400 and refused.json()["argument"] == "init_image"  # our API: 400
    after = sorted(inputs.iterdir())
    assert [p for p in after if p not in before] == [inputs / f"{ref[7:]}.png"]  # only the upload was kept


def test_txt2img_hires_fix_through_the_client(a1111) -> None:
    _, api = a1111
    result = api.txt2img(prompt="a red circle", width=64, height=64, steps=3, seed=9, enable_hr=True, hr_scale=2,
                         hr_upscaler=webuiapi.HiResUpscaler.Latent, hr_second_pass_steps=4,
                         denoising_strength=0.5)  # fmt: skip
    assert result.images[0].size == (128, 128)
    text = result.info["infotexts"][0]
    assert "Size: 64x64" in text and "Denoising strength: 0.5" in text and "Hires upscaler: Latent" in text
    assert "Hires upscale: 2" in text and "Hires steps: 4" in text and result.info["denoising_strength"] == 0.5
    resized = api.txt2img(prompt="a red circle", width=64, height=64, steps=2, seed=9, enable_hr=True,
                          hr_resize_x=96, hr_upscaler="Lanczos")  # fmt: skip
    assert resized.images[0].size == (96, 96) and "Hires resize: 96x96" in resized.info["infotexts"][0]
