"""A user's A1111 folder, pointed at with one line of config (or one option), works: a prompt copied from a PNG that
A1111 wrote (naming a LoRA, an embedding and the checkpoint's own .vae file) gives an image whose
parameters line is that PNG's, apart from the version."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from steady.config import settings
from steady.images import infotext
from steady.images.pngmeta import read_png_info
from steady.models.hashing import sha256
from steady.models.loras import inspect_lora, lora_hash
from tests.fixtures.cli import run_main
from tests.fixtures.embeddings import save_embedding
from tests.fixtures.loras import save_tiny_lora
from tests.fixtures.tiny_models import save_tiny_single_file
from tests.fixtures.vaes import save_tiny_vae


@pytest.mark.parametrize("how", ["config", "option"])
def test_a1111_folder_reproduces_a_pngs_parameters(tmp_path, capsys, how):
    webui = tmp_path / "stable-diffusion-webui"
    ckpt = save_tiny_single_file("sd1", webui / "models" / "Stable-diffusion" / "tiny.safetensors")
    save_tiny_vae("sd1", webui / "models" / "Stable-diffusion" / "tiny.vae.safetensors")  # A1111's Automatic VAE
    lora = save_tiny_lora("sd1", webui / "models" / "Lora" / "grainy.safetensors")
    emb = save_embedding(webui / "embeddings" / "shinyx.safetensors", (32,), vectors=2)
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    if how == "config":
        cfg.config_path.write_text(f'a1111_dir = "{webui}"\n', encoding="utf-8")  # the one line
    folder = ["--a1111-dir", str(webui)] if how == "option" else []

    # The PNG as A1111 writes it (its parameters chunk only).
    vae = ckpt.with_name("tiny.vae.safetensors")
    line = (f"Steps: 3, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 32x32, Model hash: {sha256(ckpt, cfg)[:10]}, "
            f"Model: tiny, VAE hash: {sha256(vae, cfg)[:10]}, VAE: tiny.vae.safetensors, "
            f'Lora hashes: "grainy: {lora_hash(inspect_lora(lora), cfg)}", TI hashes: "shinyx: {sha256(emb, cfg)[:12]}", '
            "Version: v1.8.0")  # fmt: skip
    theirs = f"a red circle <lora:grainy:0.8>, (shinyx:1.1)\nNegative prompt: blurry\n{line}"
    chunk = PngInfo()
    chunk.add_text("parameters", theirs)
    Image.new("RGB", (32, 32)).save(tmp_path / "from-a1111.png", pnginfo=chunk)

    parsed = infotext.parse(read_png_info(tmp_path / "from-a1111.png").parameters_text)
    p = parsed.params
    code, out = run_main(["generate", p["prompt"], "-N", p["negative_prompt"], "--steps", str(p["steps"]),
                          "--sampler", p["sampler"], "--cfg", str(p["cfg_scale"]), "--seed", str(p["seed"]),
                          "-W", str(p["width"]), "-H", str(p["height"]), "-m", p["model_name"], "--json", *folder], capsys)  # fmt: skip
    assert code == 0, out.err
    [row] = [json.loads(x) for x in out.out.splitlines() if x.startswith("{") and '"path"' in x]
    ours = read_png_info(row["path"]).parameters_text
    assert ours.rsplit(", Version: ", 1)[0] == theirs.rsplit(", Version: ", 1)[0]
    assert "warnings" not in json.dumps(read_png_info(row["path"]).raw.get("steady", "{}"))


def test_folder_options_win_over_config_and_are_checked(tmp_path, capsys):
    webui = tmp_path / "webui"
    lora = save_tiny_lora("sd1", webui / "models" / "Lora" / "grainy.safetensors")
    save_embedding(webui / "embeddings" / "shinyx.safetensors", (32,), vectors=2)
    save_tiny_vae("sd1", tmp_path / "myvae" / "soft.safetensors")
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.config_path.write_text(f'lora_dir = "{tmp_path / "elsewhere"}"\n', encoding="utf-8")

    code, out = run_main(["models", "--no-hash", "--json", "--a1111-dir", str(webui),
                          "--vae-dir", str(tmp_path / "myvae")], capsys)  # fmt: skip
    assert code == 0, out.err
    listed = {json.loads(x)["path"] for x in out.out.splitlines() if x.startswith("{")}
    assert {str(lora), str(webui / "embeddings" / "shinyx.safetensors"), str(tmp_path / "myvae" / "soft.safetensors")} <= listed

    code, out = run_main(["models", "--lora-dir", str(tmp_path / "missing")], capsys)
    assert code == 2 and out.err.strip().splitlines() == [f"steady: error: lora_dir={str(tmp_path / 'missing')!r}: does not exist"]
