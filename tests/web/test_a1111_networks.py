"""A1111's LoRA, embedding, VAE, style and unload endpoints, through the unmodified webuiapi client
where it has methods for them (httpx where it has none), on a server whose folders hold a LoRA, two
embeddings, a VAE and a styles.csv."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import webuiapi

from tests.fixtures.embeddings import save_embedding
from tests.fixtures.loras import save_tiny_lora
from tests.fixtures.tiny_models import save_tiny_folder
from tests.fixtures.vaes import save_tiny_vae
from tests.web.conftest import RunningServer, running_server


@pytest.fixture(scope="module")
def a1111(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, webuiapi.WebUIApi]]:
    home = tmp_path_factory.mktemp("a1111-networks")
    save_tiny_folder("sd1", home / "models" / "random-sd1")
    save_tiny_lora("sd1", home / "loras" / "grainy.safetensors")
    save_embedding(home / "embeddings" / "fits-tiny.safetensors", (64,), vectors=2)  # the embedded model's width
    save_embedding(home / "embeddings" / "shinyx.safetensors", (32,), vectors=2)  # random-sd1's width
    save_tiny_vae("sd1", home / "vae" / "grain.vae.safetensors")
    (home / "styles.csv").write_text('name,prompt,negative_prompt\nNight,"{prompt}, at night",daylight\n')
    with running_server(home) as server:
        yield server, webuiapi.WebUIApi(host="127.0.0.1", port=server.port)


def test_lists_in_a1111_shapes(a1111) -> None:
    server, api = a1111
    [lora] = api.get_loras()
    assert (lora["name"], lora["path"].endswith("grainy.safetensors")) == ("grainy", True)
    assert set(lora) >= {"name", "alias", "path", "metadata"}
    assert api.get_sd_vae() == [{"model_name": "grain.vae.safetensors",
                                 "filename": str(server.home / "vae" / "grain.vae.safetensors")}]  # fmt: skip
    embeddings = api.get_embeddings()  # against the current model, the embedded one (64 wide)
    assert list(embeddings["loaded"]) == ["fits-tiny"] and list(embeddings["skipped"]) == ["shinyx"]
    assert embeddings["loaded"]["fits-tiny"]["vectors"] == 2
    assert api.get_prompt_styles() == [{"name": "Night", "prompt": "{prompt}, at night", "negative_prompt": "daylight"}]
    assert api.refresh_checkpoints() is None
    for path in ("refresh-loras", "refresh-vae"):
        assert httpx.post(f"{server.url}/sdapi/v1/{path}").json() is None


def test_txt2img_with_lora_embedding_style_and_sd_vae(a1111) -> None:
    server, api = a1111
    api.util_set_model("random-sd1")
    try:
        result = api.txt2img(prompt="a circle <lora:grainy:0.8>, shinyx", styles=["Night"], width=32, height=32,
                             steps=2, seed=5, override_settings={"sd_vae": "grain.vae.safetensors"})  # fmt: skip
        text = result.info["infotexts"][0]
        assert text.startswith("a circle <lora:grainy:0.8>, shinyx, at night\nNegative prompt: daylight\n")
        assert 'Lora hashes: "grainy: ' in text and 'TI hashes: "shinyx: ' in text
        assert "VAE: grain.vae.safetensors" in text and result.info["sd_vae_name"] == "grain.vae.safetensors"
        assert result.info["styles"] == ["Night"]
        refused = httpx.post(f"{server.url}/sdapi/v1/txt2img", json={"prompt": "x", "styles": ["Nope"], "steps": 1,
                                                                     "width": 32, "height": 32}, timeout=60)  # fmt: skip
        assert refused.status_code in (400, 422) and "Nope" in refused.text
    finally:
        api.util_set_model("steady-tiny")


def test_unload_recycles_the_worker(a1111) -> None:
    server, api = a1111
    api.txt2img(prompt="a square", width=32, height=32, steps=1, seed=1)
    assert server.studio.supervisor.worker is not None
    assert httpx.post(f"{server.url}/sdapi/v1/unload-checkpoint", timeout=120).status_code == 200
    assert server.studio.supervisor.worker is None  # the process and all it held are gone
    assert httpx.post(f"{server.url}/sdapi/v1/reload-checkpoint", timeout=120).status_code == 200
