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
    for body, argument in [({"prompt": "x", "enable_hr": True}, "enable_hr"),
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
