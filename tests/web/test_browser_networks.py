"""The page's A1111-folder controls in a real browser (Debian's Chromium, headless): the VAE and
style choices come from the folders, picking a LoRA or an embedding puts its tag or word into the
prompt, and a run with them records what it used."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fixtures.embeddings import save_embedding
from tests.fixtures.loras import save_tiny_lora
from tests.web.test_browser import ServeProcess, browser, open_form  # noqa: F401 - the module's browser fixture

pytestmark = pytest.mark.browser


def test_vae_style_and_network_tags_from_the_page(browser, tmp_path: Path) -> None:  # noqa: F811
    home = tmp_path / "home"
    save_tiny_lora("embedded", home / "loras" / "ember.safetensors", parts=("unet", "text_encoder"))
    save_embedding(home / "embeddings" / "glowy.safetensors", (64,), vectors=2)
    (home / "styles.csv").write_text('name,prompt,negative_prompt\nNight,"{prompt}, at night",daylight\n')
    server = ServeProcess(home)
    try:
        page = open_form(browser, server, prompt="a red circle", n_images=1, steps=4, seed=3)
        page.wait_for_function("document.querySelectorAll('#network-pick option').length === 3")
        page.select_option("#network-pick", "<lora:ember:1>")
        page.select_option("#network-pick", "glowy")
        assert page.input_value("#prompt") == "a red circle <lora:ember:1> glowy"
        assert page.eval_on_selector_all("#vae option", "os => os.map(o => o.value)") == ["auto", "none"]
        page.select_option("#style", "Night")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#run-strip img').length === 1", timeout=120_000)
        [image] = httpx.get(server.url + "/api/images", params={"limit": 1}).json()["items"]
        text = httpx.get(f"{server.url}/api/images/{image['id']}").json()
        params = text["params"]
        assert params["prompt"] == "a red circle <lora:ember:1> glowy, at night"
        assert [e["name"] for e in params["extra"]["loras"]] == ["ember"]
        assert [e["name"] for e in params["extra"]["embeddings"]] == ["glowy"]
        assert params["extra"]["styles"] == ["Night"]
        page.click("#unload")
        page.wait_for_function("!document.querySelector('#unload').disabled", timeout=60_000)
    finally:
        server.stop()


def test_steps_and_sampler_left_to_the_model_take_a_few_step_loras_recommendation(browser, tmp_path: Path) -> None:  # noqa: F811
    """The page's empty steps field and "Automatic" sampler leave both to the model, as the CLI does:
    a LoRA whose defaults file recommends 3 steps of DPM++ 2M gets them (and an explicit choice wins)."""
    home = tmp_path / "home"
    save_tiny_lora("embedded", home / "loras" / "quick.safetensors", parts=("unet",))
    (home / "loras" / "quick.defaults.toml").write_text('steps = 3\nsampler = "DPM++ 2M"\ncfg_scale = 2.0\n')
    server = ServeProcess(home)
    try:
        page = open_form(browser, server, prompt="a red circle <lora:quick:1>", n_images=1, seed=3)
        assert page.input_value("#steps") == "" and page.input_value("#sampler") == ""
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#run-strip img').length === 1", timeout=120_000)
        [image] = httpx.get(server.url + "/api/images", params={"limit": 1}).json()["items"]
        params = httpx.get(f"{server.url}/api/images/{image['id']}").json()["params"]
        assert (params["steps"], params["sampler"], params["cfg_scale"]) == (3, "DPM++ 2M", 2.0), params
    finally:
        server.stop()
