"""LoRA files without torch: described from their headers, found by name as A1111 finds them,
hashed as A1111 hashes them, fitted to the model at check time, listed by `steady models`."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from steady.config import settings
from steady.errors import BadInput
from steady.models.detect import inspect_model
from steady.models.loras import find_lora, inspect_lora, list_loras, lora_hash, unfit_reason
from steady.params import GenerationRequest
from steady.request.check import check
from tests.fixtures.cli import run_main
from tests.fixtures.loras import save_shaped_lora, save_tiny_lora


@pytest.fixture()
def lora_dir():
    return settings().lora_dir


@pytest.fixture(scope="module")
def sd1_model(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    return save_tiny_folder("sd1", tmp_path_factory.mktemp("models") / "tiny-sd1")


@pytest.mark.parametrize("arch,kind,expected", [
    ("sd1", "LoRA", ("sd1", "LoRA", 768, ("unet", "text_encoder"))),
    ("sd1", "LoCon", ("sd1", "LoCon", 768, ("unet", "text_encoder"))),
    ("sd2", "LoRA", ("sd2", "LoRA", 1024, ("unet", "text_encoder"))),
    ("sdxl", "LoRA", ("sdxl", "LoRA", 2048, ("unet", "text_encoder", "text_encoder_2"))),
    ("sdxl-unet", "LoRA", ("sdxl", "LoRA", 2048, ("unet",))),  # kohya's SDXL block names, the UNet only
    ("sdxl", "LoHa", ("sdxl", "LoHa", 2048, ("unet", "text_encoder", "text_encoder_2"))),
    ("sd1", "LoKr", ("", "LoKr", None, ("unet", "text_encoder"))),
])  # fmt: skip
def test_architecture_and_kind_from_the_header(tmp_path, arch, kind, expected):
    info = inspect_lora(save_shaped_lora(tmp_path / "x.safetensors", arch, kind))
    assert (info.arch, info.kind, info.context_dim, set(info.parts)) == (*expected[:3], set(expected[3]))
    assert info.layout == "kohya" and info.format == "safetensors"


def test_the_diffusers_layout_and_a_test_models_widths(tmp_path):
    sd1 = inspect_lora(save_tiny_lora("sd1", tmp_path / "a.safetensors", "diffusers"))
    assert (sd1.layout, sd1.kind, sd1.context_dim, sd1.arch) == ("diffusers", "LoCon", 32, "")  # no family is 32 wide
    xl = inspect_lora(save_tiny_lora("sdxl", tmp_path / "b.safetensors", "kohya"))
    assert (xl.layout, xl.arch, xl.context_dim) == ("kohya", "sdxl", 64)  # a second text encoder: SDXL


def test_metadata_speaks_only_when_the_shapes_do_not(tmp_path):
    from safetensors.numpy import save_file
    import numpy as np

    path = tmp_path / "te-less.safetensors"
    save_file({"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": np.zeros((1, 1280), np.float16)},
              str(path), metadata={"ss_base_model_version": "sdxl_base_v1-0", "ss_output_name": "my style"})  # fmt: skip
    info = inspect_lora(path)
    assert (info.arch, info.alias) == ("sdxl", "my style")
    shaped = save_shaped_lora(tmp_path / "sd1.safetensors", "sd1", metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    assert inspect_lora(shaped).arch == "sd1"  # the tensors win over what a trainer wrote


def test_not_a_lora_and_unreadable_files(tmp_path):
    from safetensors.numpy import save_file
    import numpy as np

    path = tmp_path / "embedding.safetensors"
    save_file({"emb_params": np.zeros((2, 768), np.float16)}, str(path))
    assert inspect_lora(path).layout == ""
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(BadInput) as info:
        inspect_lora(broken, argument="prompt")
    assert info.value.argument == "prompt" and "not a valid safetensors file" in info.value.why


def test_a1111_hash_of_a_lora(tmp_path, lora_dir):
    """A1111's short LoRA hash: 12 hex digits of the sha256 of the tensor data after the header
    (kohya's addnet hash), or the trainer's recorded sshs_model_hash when there is one; for a
    pickle, of the whole file."""
    cfg = settings()
    path = save_shaped_lora(lora_dir / "plain.safetensors", "sd1")
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    expected = hashlib.sha256(data[8 + length:]).hexdigest()[:12]
    assert lora_hash(inspect_lora(path), cfg) == expected
    # The same tensors with other metadata: the same hash (the header is not hashed).
    other = save_shaped_lora(lora_dir / "renamed.safetensors", "sd1", metadata={"ss_output_name": "renamed"})
    assert lora_hash(inspect_lora(other), cfg) == expected
    recorded = save_shaped_lora(lora_dir / "recorded.safetensors", "sd1", metadata={"sshs_model_hash": "AB" * 32})
    assert lora_hash(inspect_lora(recorded), cfg) == "ab" * 6

    import torch

    pickled = lora_dir / "old.pt"
    torch.save({"lora_unet_x_attn2_to_k.lora_down.weight": torch.zeros(1, 768)}, pickled)
    info = inspect_lora(pickled)
    assert (info.format, info.arch) == ("pickle", "sd1")
    assert lora_hash(info, cfg) == hashlib.sha256(pickled.read_bytes()).hexdigest()[:12]


def test_names_are_found_as_a1111_finds_them(lora_dir):
    cfg = settings()
    save_shaped_lora(lora_dir / "Film-Grain.safetensors", "sd1")
    save_shaped_lora(lora_dir / "styles" / "ink.safetensors", "sd1")
    save_shaped_lora(lora_dir / "other" / "ink.safetensors", "sd1")
    save_shaped_lora(lora_dir / "v2" / "watercolor_v2.safetensors", "sd1", metadata={"ss_output_name": "watercolor"})
    assert find_lora("Film-Grain", cfg).path == lora_dir / "Film-Grain.safetensors"
    assert find_lora("film-grain", cfg).path == lora_dir / "Film-Grain.safetensors"  # then ignoring case
    assert find_lora("styles/ink", cfg).path == lora_dir / "styles" / "ink.safetensors"
    assert find_lora("watercolor", cfg).path == lora_dir / "v2" / "watercolor_v2.safetensors"  # the trainer's name
    with pytest.raises(BadInput) as info:
        find_lora("ink", cfg, "prompt", "<lora:ink:1>")
    assert (info.value.argument, info.value.value) == ("prompt", "<lora:ink:1>")
    assert "2 LoRA files are named 'ink': other/ink, styles/ink" in info.value.why
    with pytest.raises(BadInput) as info:
        find_lora("film_grain", cfg, "negative_prompt", "<lora:film_grain:0.5>")
    assert info.value.argument == "negative_prompt"
    assert f"no LoRA named 'film_grain' in {lora_dir}; closest: Film-Grain" in info.value.why


def test_an_empty_or_missing_folder_says_where_to_put_them(tmp_path):
    with pytest.raises(BadInput, match="has no LoRA files .* set lora_dir in config.toml"):
        find_lora("anything", settings())


def test_lora_dir_comes_from_config(_isolated_home, tmp_path):
    assert settings().lora_dir == _isolated_home / "loras"
    _isolated_home.mkdir(parents=True, exist_ok=True)
    (_isolated_home / "config.toml").write_text(f'lora_dir = "{tmp_path / "webui" / "models" / "Lora"}"\n')
    assert settings().lora_dir == tmp_path / "webui" / "models" / "Lora"
    (_isolated_home / "config.toml").write_text("lora_dir = 3\n")
    with pytest.raises(BadInput, match="lora_dir=3"):
        settings().lora_dir


def test_what_fits_which_model(tmp_path, sd1_model):
    tiny_sd1 = inspect_model(sd1_model)
    shaped = {arch: inspect_lora(save_shaped_lora(tmp_path / f"{arch}.safetensors", arch)) for arch in ("sd1", "sdxl")}
    assert unfit_reason(shaped["sdxl"], tiny_sd1) == "is an SDXL LoRA and the model is SD 1"
    # An SD 1 LoRA's 768-wide context does not fit the tiny SD 1 model's 32.
    assert unfit_reason(shaped["sd1"], tiny_sd1) == "was made for a 768-wide text context and the model's is 32"
    assert unfit_reason(inspect_lora(save_tiny_lora("sd1", tmp_path / "t.safetensors")), tiny_sd1) == ""
    loha = inspect_lora(save_shaped_lora(tmp_path / "loha.safetensors", "sd1", "LoHa"))
    assert unfit_reason(loha, tiny_sd1) == "is a LoHa network, which diffusers' LoRA loader cannot apply to Stable Diffusion"


def test_check_resolves_the_tags_of_every_prompt(lora_dir, sd1_model):
    """check(): each image's LoRAs in ImageParams.extra (a file named twice has its weights added),
    what does not fit as a warning, a pickle refused without --allow-pickle, and a variant whose
    prompt changes its LoRAs records its own."""
    cfg = settings()
    save_tiny_lora("sd1", lora_dir / "grain.safetensors")
    save_tiny_lora("sdxl", lora_dir / "xl.safetensors")
    save_shaped_lora(lora_dir / "loha.safetensors", "sd1", "LoHa")
    request = GenerationRequest(prompt="a cat <lora:grain:0.5> <lora:xl:1> <lora:loha:1:dyn=4>",
                                negative_prompt="blur <lora:grain:0.25:0>", model=str(sd1_model))  # fmt: skip
    resolved = check(request, cfg)
    extra = resolved.image_params(0).extra
    [entry] = extra["loras"]
    assert (entry["name"], entry["te"], entry["unet"], entry["path"]) == ("grain", 0.75, 0.5, str(lora_dir / "grain.safetensors"))
    assert entry["hash"] == lora_hash(inspect_lora(lora_dir / "grain.safetensors"), cfg)
    assert extra["warnings"] == [
        "<lora:xl> skipped: xl.safetensors is an SDXL LoRA and the model is SD 1",
        "<lora:loha>: dyn=4 is not supported; ignored",
        "<lora:loha> skipped: loha.safetensors is a LoHa network, which diffusers' LoRA loader cannot apply to "
        "Stable Diffusion",
    ]
    assert resolved.warnings() == extra["warnings"]
    # No tags: nothing recorded, as before.
    assert check(GenerationRequest(prompt="a cat", model=str(sd1_model)), cfg).image_params(0).extra == {}
    # Variants: a grid over the tag's weight.
    grid = check(GenerationRequest(prompt="a cat <lora:grain:0.5>", model=str(sd1_model), x_axis="Prompt S/R: 0.5, 0"), cfg)
    assert [p.extra["loras"][0]["unet"] for p in (grid.image_params(0), grid.image_params(1))] == [0.5, 0.0]
    # A pickle needs --allow-pickle, and is refused naming the tag.
    import torch

    torch.save({"lora_unet_x_attn2_to_k.lora_down.weight": torch.zeros(1, 32)}, lora_dir / "old.pt")
    with pytest.raises(BadInput) as info:
        check(GenerationRequest(prompt="a cat", negative_prompt="<lora:old:1>", model=str(sd1_model)), cfg)
    assert (info.value.argument, info.value.value) == ("negative_prompt", "<lora:old:1>")
    assert "--allow-pickle" in info.value.why
    allowed = check(GenerationRequest(prompt="a cat <lora:old:1>", model=str(sd1_model), allow_pickle=True), cfg)
    assert allowed.image_params(0).extra["allow_pickle"] is True
    assert allowed.image_params(0).extra["loras"][0]["name"] == "old"


def test_steady_models_lists_loras_with_arch_and_hash(lora_dir, capsys):
    cfg = settings()
    sd1 = save_shaped_lora(lora_dir / "film.safetensors", "sd1")
    xl = save_shaped_lora(lora_dir / "xl" / "pixel-art.safetensors", "sdxl", "LoCon")
    save_tiny_lora("sd1", lora_dir / "tiny.safetensors")
    (lora_dir / "broken.safetensors").write_bytes(b"\x10\x00")
    code, out = run_main(["models"], capsys)
    assert code == 0
    lines = out.out.splitlines()
    assert f"LoRAs in {lora_dir} (use as <lora:NAME:WEIGHT> in a prompt):" in lines
    film = next(line for line in lines if line.startswith("film "))
    assert film.split()[1:3] == ["sd1", "LoRA"] and lora_hash(inspect_lora(sd1), cfg) in film
    pixel = next(line for line in lines if line.startswith("xl/pixel-art "))
    assert pixel.split()[1:3] == ["sdxl", "LoCon"] and lora_hash(inspect_lora(xl), cfg) in pixel
    assert next(line for line in lines if line.startswith("tiny ")).split()[1] == "?"
    assert f"steady: note: {lora_dir / 'broken.safetensors'}:" in out.err
    code, out = run_main(["models", "--json"], capsys)
    listed = [json.loads(line) for line in out.out.splitlines()]
    film_json = next(item for item in listed if item.get("name") == "film")
    assert film_json["type"] == "lora" and film_json["arch"] == "sd1" and len(film_json["hash"]) == 12
    assert [i.name for i in list_loras(cfg)] == ["film", "tiny", "pixel-art"]


def test_shipped_loras_are_found_after_the_lora_folder(lora_dir):
    from steady.models.loras import shipped_lora_dir

    shipped = shipped_lora_dir() / "tiny-lcm.safetensors"
    assert shipped.is_file()
    assert find_lora("tiny-lcm", settings()).path == shipped
    assert find_lora("Tiny-LCM", settings()).path == shipped
    with pytest.raises(BadInput, match="no LoRA named 'tiny-lc'"):
        find_lora("tiny-lc", settings())
    save_tiny_lora("sd1", lora_dir / "tiny-lcm.safetensors")  # a user's file of the same name wins
    assert find_lora("tiny-lcm", settings()).path == lora_dir / "tiny-lcm.safetensors"
