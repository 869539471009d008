"""Upscaling over HTTP: A1111's /upscalers and /extra-single-image through the unmodified webuiapi
client, and our /api/upscale (the page's action), each a job of the studio's worker."""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Iterator

import numpy as np
import pytest
import webuiapi
from PIL import Image

from tests.web.conftest import RunningServer, running_server

pytestmark = pytest.mark.skipif(importlib.util.find_spec("spandrel") is None, reason="spandrel is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, webuiapi.WebUIApi]]:
    from tests.fixtures.upscalers import save_bad_upscaler, save_tiny_esrgan

    home = tmp_path_factory.mktemp("upscale-home")
    save_tiny_esrgan(home / "upscalers" / "4x-tiny.safetensors")
    save_bad_upscaler(home / "upscalers" / "4x-broken.safetensors")
    with running_server(home) as running:
        yield running, webuiapi.WebUIApi(host="127.0.0.1", port=running.port)


def _picture(w: int = 24, h: int = 16) -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8"))


def test_upscalers_list_has_a1111s_shape(server) -> None:
    running, api = server
    with running.client() as client:
        listed = client.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in listed[:3]] == ["None", "Lanczos", "Nearest"]
    tiny = next(u for u in listed if u["name"] == "4x-tiny")
    assert set(tiny) == {"name", "model_name", "model_path", "model_url", "scale"} and tiny["scale"] == 4
    assert "4x-tiny" in api.util_get_upscaler_names() if hasattr(api, "util_get_upscaler_names") else True


def test_extra_single_image_through_webuiapi(server) -> None:
    running, api = server
    source = _picture()
    result = api.extra_single_image(image=source, upscaler_1="4x-tiny", upscaling_resize=2)
    assert result.image.size == (48, 32)
    assert "Postprocess upscaler: 4x-tiny" in result.json["html_info"]
    lanczos = api.extra_single_image(image=source, upscaler_1="Lanczos", upscaling_resize=3)
    assert lanczos.image.size == (72, 48)
    same = api.extra_single_image(image=source, upscaler_1="None")  # A1111: nothing to do
    assert np.array_equal(np.asarray(same.image.convert("RGB")), np.asarray(source))
    # Each upscale is in the catalog, linked to the uploaded source (by its hash, as stored in inputs/).
    with running.studio.catalog.reading() as conn:
        rows = conn.execute("SELECT width, height, init_hash FROM images WHERE init_hash IS NOT NULL").fetchall()
    sizes = {(w, h) for w, h, _ in rows}
    assert {(48, 32), (72, 48)} <= sizes
    assert all((running.home / "inputs").glob(f"{digest}.*") for _, _, digest in rows)


def test_bad_extras_are_4xx_naming_the_field(server) -> None:
    running, _ = server
    png = io.BytesIO()
    _picture().save(png, format="PNG")
    image = base64.b64encode(png.getvalue()).decode()
    with running.client() as client:
        for body, field in [({"upscaler_1": "R-ESRGAN 4x+"}, "upscaler"), ({"upscaler_1": "4x-broken"}, "upscaler_1"),
                            ({"upscaler_1": "Lanczos", "gfpgan_visibility": 1}, "gfpgan_visibility"),
                            ({"upscaler_1": "Lanczos", "upscaling_resize": 50}, "upscaling_resize"),
                            ({"upscaler_1": "Lanczos", "image": "bm90IGFuIGltYWdl"}, "image")]:  # fmt: skip
            r = client.post("/sdapi/v1/extra-single-image", json={"image": image, **body})
            assert 400 <= r.status_code < 500, (body, r.text)
            assert field in r.text, (body, r.text)


def test_page_upscale_of_a_catalog_image(server) -> None:
    running, _ = server
    png = io.BytesIO()
    _picture(16, 16).save(png, format="PNG")
    with running.client() as client:
        ref = client.post("/api/inputs", json={"image": base64.b64encode(png.getvalue()).decode()}).json()["ref"]
        first = client.post("/api/upscale", json={"image": ref, "upscaler": "Nearest", "scale": 2}).json()["jobs"][0]
        done = running.wait_job(first["job_id"])
        assert done["state"] == "done" and len(done["image_ids"]) == 1
        parent = done["image_ids"][0]
        again = client.post("/api/upscale", json={"image": f"image:{parent}", "upscaler": "4x-tiny", "scale": 2})
        assert "2x upscale of 32x32 to 64x64 with 4x-tiny" in again.json()["plans"][0]  # the planner says its tiles
        state = running.wait_job(again.json()["jobs"][0]["job_id"])
        record = client.get(f"/api/images/{state['image_ids'][0]}").json()
        assert record["init_image_id"] == parent  # "from image #N"
        assert (record["params"]["width"], record["params"]["height"]) == (64, 64)
        missing = client.post("/api/upscale", json={"image": "image:999999", "upscaler": "Nearest"})
        assert 400 <= missing.status_code < 500 and "image:999999" in missing.text


def test_an_imported_image_without_a_seed_stays_without_one(server, tmp_path) -> None:
    """An image whose PNG did not say its seed (an import) is upscaled with the seed unknown, not 0."""
    from steady.images.pngmeta import write_png
    from steady.params import GenerationRequest, ImageParams

    running, _ = server
    params = ImageParams(prompt="an old photo", negative_prompt="", steps=None, cfg_scale=None, width=16, height=16,
                         seed=None, sampler="", clip_skip=None, model_name="", model_hash="", model_arch="",
                         device="", dtype="")  # fmt: skip
    path = write_png(_picture(16, 16), running.home / "outputs" / "old.png", params)
    catalog = running.studio.catalog
    run = catalog.start_run(GenerationRequest("an old photo"), "", "")
    parent = catalog.add_image(run, path, 0, params, 0.0)
    with running.client() as client:
        job = client.post("/api/upscale", json={"image": f"image:{parent}", "upscaler": "Lanczos", "scale": 2}).json()
        state = running.wait_job(job["jobs"][0]["job_id"])
        assert state["state"] == "done", state
        record = client.get(f"/api/images/{state['image_ids'][0]}").json()
    assert record["params"]["seed"] is None and "Seed:" not in record["infotext"]
    assert record["path"].endswith("-00.png") and record["init_image_id"] == parent
