"""LoRAs through the whole path (check, plan, queue, a supervised worker process, record), on the
tiny random-weight models with random-weight LoRAs built by peft (tests/fixtures/loras.py): the
pixels change with a LoRA, come back exactly without it, and the image records what it used."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct

import numpy as np
import pytest
from PIL import Image

import steady
from steady.config import settings
from steady.images.pngmeta import read_png_info
from steady.params import GenerationRequest, ImageParams
from tests.fixtures.cli import run_main
from tests.fixtures.loras import save_tiny_lora

PROMPT = "a red circle"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    root = tmp_path_factory.mktemp("models")
    return {arch: save_tiny_folder(arch, root / f"tiny-{arch}") for arch in ("sd1", "sdxl")}


@pytest.fixture()
def loras():
    """This test's LoRA folder (STEADY_HOME/loras) with a tiny SD1 LoRA in both layouts and a tiny
    SDXL one."""
    folder = settings().lora_dir
    save_tiny_lora("sd1", folder / "tiny-sd1.safetensors", "kohya")
    save_tiny_lora("sd1", folder / "diffusers" / "tiny-sd1-diffusers.safetensors", "diffusers")
    save_tiny_lora("sd1", folder / "tiny-sd1-other.safetensors", "kohya", seed=1)
    save_tiny_lora("sdxl", folder / "tiny-xl.safetensors", "kohya")
    return folder


def make(model, sup, prompt=PROMPT, **kw) -> list:
    base = dict(prompt=prompt, negative_prompt="blurry", steps=3, width=32, height=32, seed=1234, model=str(model))
    return steady.generate(GenerationRequest(**{**base, **kw}), supervisor=sup)


def pixels(result) -> np.ndarray:
    return np.asarray(Image.open(result.path).convert("RGB"))


def test_applied_per_image_and_removed_after(models, sup, loras):
    """Weight 1 changes the pixels; weight 0, and a plain image after LoRA images in the same worker,
    give the base model's exact pixels; a LoRA after another LoRA gives its own pixels."""
    [base] = make(models["sd1"], sup)
    [full] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:1>")
    [again] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:1>")  # the adapter kept from the image before
    [other] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1-other:1>")  # the first deleted, this one loaded
    [zero] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:0>")
    [plain] = make(models["sd1"], sup)
    assert np.abs(pixels(full).astype(int) - pixels(base)).max() > 10
    assert np.array_equal(pixels(again), pixels(full))
    assert not np.array_equal(pixels(other), pixels(full)) and not np.array_equal(pixels(other), pixels(base))
    assert np.array_equal(pixels(zero), pixels(base))
    assert np.array_equal(pixels(plain), pixels(base))
    assert full.params.prompt == f"{PROMPT} <lora:tiny-sd1:1>"  # the tag stays in the recorded prompt
    assert [e["name"] for e in full.params.extra["loras"]] == ["tiny-sd1"]
    assert "loras" not in plain.params.extra


def test_text_encoder_and_unet_weights_apart(models, sup, loras):
    """<lora:NAME:TE:UNET>, A1111's order: each part can be off on its own."""
    [base] = make(models["sd1"], sup)
    [both] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:1:1>")
    [te_only] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:1:0>")
    [unet_only] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:te=0:unet=1>")
    images = [pixels(r) for r in (base, both, te_only, unet_only)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j]), (i, j)
    [entry] = te_only.params.extra["loras"]
    assert (entry["name"], entry["te"], entry["unet"]) == ("tiny-sd1", 1.0, 0.0)


def test_kohya_and_diffusers_layouts_give_the_same_pixels(models, sup, loras):
    """The same tensors in kohya's names and in diffusers/peft's, each through diffusers' loader;
    the tag also works in the negative prompt, and beside A1111 emphasis (our own encoder path)."""
    [kohya] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:0.8>")
    [diffusers] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1-diffusers:0.8>")
    assert np.array_equal(pixels(kohya), pixels(diffusers))
    [negative] = make(models["sd1"], sup, negative_prompt="blurry <lora:diffusers/tiny-sd1-diffusers:0.8>")
    assert np.array_equal(pixels(negative), pixels(kohya))
    [emphasis] = make(models["sd1"], sup, f"a (red:1.3) circle <lora:tiny-sd1:0.8>")
    [emphasis_base] = make(models["sd1"], sup, "a (red:1.3) circle")
    assert not np.array_equal(pixels(emphasis), pixels(emphasis_base))


def test_an_sdxl_lora_on_an_sd1_model_is_skipped_and_recorded(models, sup, loras, capsys):
    [base] = make(models["sd1"], sup)
    [skipped] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-xl:1>")
    assert np.array_equal(pixels(skipped), pixels(base))
    [warning] = skipped.params.extra["warnings"]
    assert warning == "<lora:tiny-xl> skipped: tiny-xl.safetensors is an SDXL LoRA and the model is SD 1"
    assert "loras" not in skipped.params.extra
    assert read_png_info(skipped.path).params["extra"]["warnings"] == [warning]
    assert sup.catalog.get_image(skipped.image_id).params.extra["warnings"] == [warning]
    # The CLI says so before the run, on one line.
    code, out = run_main(["generate", f"{PROMPT} <lora:tiny-xl:1>", "-m", str(models["sd1"]), "--steps", "1",
                          "-W", "32", "-H", "32", "-q"], capsys)  # fmt: skip
    assert code == 0
    assert f"steady: warning: {warning}" in out.err.splitlines()


def test_an_sdxl_lora_on_an_sdxl_model(models, sup, loras):
    [base] = make(models["sdxl"], sup)
    [full] = make(models["sdxl"], sup, f"{PROMPT} <lora:tiny-xl:1>")
    [plain] = make(models["sdxl"], sup)
    assert not np.array_equal(pixels(full), pixels(base))
    assert np.array_equal(pixels(plain), pixels(base))


def test_a_missing_name_exits_2_naming_the_closest(models, loras, capsys, tmp_path):
    out = tmp_path / "out"
    code, printed = run_main(["generate", f"{PROMPT} <lora:tiny-sd:1>", "-m", str(models["sd1"]), "--out", str(out)],
                             capsys)  # fmt: skip
    assert code == 2
    [line] = printed.err.strip().splitlines()
    assert "prompt='<lora:tiny-sd:1>': no LoRA named 'tiny-sd' in " in line
    assert line.endswith("closest: tiny-sd1, tiny-sd1-other") or "closest: tiny-sd1" in line
    assert not out.exists() or not any(out.iterdir())
    assert not settings().db_path.exists() or _rows(settings().db_path) == 0


def _rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM images").fetchone()[0]


def test_lora_hashes_round_trip_through_the_png_and_info(models, sup, loras, capsys):
    """A1111's "Lora hashes" (the first 12 hex digits of the sha256 of the tensor data after the
    safetensors header) in the parameters text; steady info prints it; an image made again from
    the PNG's parameters uses the same LoRA and has the same pixels."""
    [result] = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:0.7>, <lora:tiny-sd1-other:0.4>")
    expected = {name: _addnet_hash(loras / f"{name}.safetensors") for name in ("tiny-sd1", "tiny-sd1-other")}
    text = read_png_info(result.path).parameters_text
    assert text.splitlines()[0] == f"{PROMPT} <lora:tiny-sd1:0.7>, <lora:tiny-sd1-other:0.4>"
    line = text.splitlines()[-1]
    assert f'Lora hashes: "tiny-sd1: {expected["tiny-sd1"]}, tiny-sd1-other: {expected["tiny-sd1-other"]}", Version: ' in line
    code, out = run_main(["info", result.path], capsys)
    assert code == 0 and f'Lora hashes: "tiny-sd1: {expected["tiny-sd1"]}' in out.out
    code, out = run_main(["info", "--json", result.path], capsys)
    recorded = json.loads(out.out)["params"]["extra"]["loras"]
    assert all("path" not in e for e in recorded)  # a shared PNG does not show the user's folders
    assert [(e["name"], e["hash"], e["te"], e["unet"]) for e in recorded] == [
        ("tiny-sd1", expected["tiny-sd1"], 0.7, 0.7), ("tiny-sd1-other", expected["tiny-sd1-other"], 0.4, 0.4)]
    # The catalog row records the files (hash and path) the image used.
    row = sup.catalog.get_image(result.image_id)
    assert [(e["hash"], e["path"]) for e in row.params.extra["loras"]] == [
        (expected["tiny-sd1"], str(loras / "tiny-sd1.safetensors")),
        (expected["tiny-sd1-other"], str(loras / "tiny-sd1-other.safetensors"))]
    params = ImageParams.from_dict(read_png_info(result.path).params)
    [again] = steady.generate(params.request(model=str(models["sd1"])), supervisor=sup)
    assert np.array_equal(pixels(again), pixels(result))
    assert again.params.extra["loras"] == result.params.extra["loras"]


def test_a_grid_over_lora_weights(models, sup, loras):
    """A Prompt S/R axis over the tag's weight: each cell records its own LoRA weights."""
    [base] = make(models["sd1"], sup)
    cells = make(models["sd1"], sup, f"{PROMPT} <lora:tiny-sd1:0>", x_axis="Prompt S/R: :0>, :1>")
    assert [c.params.extra["loras"][0]["unet"] for c in cells] == [0.0, 1.0]
    assert np.array_equal(pixels(cells[0]), pixels(base))
    assert not np.array_equal(pixels(cells[1]), pixels(base))


def test_a_lora_diffusers_cannot_apply_is_skipped_and_recorded(models, sup, loras, capsys):
    """A file whose header passes (its widths fit, its architecture unknown) but whose modules are
    not in the model: the worker skips it, the image (PNG and row) records why, the CLI says it."""
    from safetensors.numpy import save_file

    name = "lora_unet_down_blocks_7_attentions_0_transformer_blocks_0_attn2_to_k"
    save_file({f"{name}.lora_down.weight": np.ones((1, 32), np.float32),
               f"{name}.lora_up.weight": np.ones((32, 1), np.float32)}, str(loras / "elsewhere.safetensors"))  # fmt: skip
    [base] = make(models["sd1"], sup)
    [result] = make(models["sd1"], sup, f"{PROMPT} <lora:elsewhere:1>")
    assert np.array_equal(pixels(result), pixels(base))
    [warning] = result.params.extra["warnings"]
    assert warning.startswith("<lora:elsewhere> skipped: diffusers cannot apply it to this model (")
    assert read_png_info(result.path).params["extra"]["warnings"] == [warning]
    assert sup.catalog.get_image(result.image_id).params.extra["warnings"] == [warning]
    [plain] = make(models["sd1"], sup)  # nothing of it is left on the pipeline
    assert np.array_equal(pixels(plain), pixels(base))
    code, out = run_main(["generate", f"{PROMPT} <lora:elsewhere:1>", "-m", str(models["sd1"]), "--steps", "1",
                          "-W", "32", "-H", "32", "-q"], capsys)  # fmt: skip
    assert code == 0 and any(line.startswith("steady: warning: <lora:elsewhere> skipped") for line in out.err.splitlines())


def _addnet_hash(path) -> str:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + length:]).hexdigest()[:12]
