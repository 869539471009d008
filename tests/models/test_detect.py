"""Architecture, format and shape-derived config from files and folders; bad inputs -> ModelError."""

from __future__ import annotations

import json
import struct

import pytest

from steady.errors import ModelError
from steady.models.detect import inspect_model, text_heads, unet_heads
from tests.fixtures.tiny_models import TINY, arch_family, save_tiny_folder, save_tiny_single_file


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_single_file_arch_and_overrides(tmp_path, arch):
    # the file name says nothing: detection must come from keys and shapes
    path = save_tiny_single_file(arch, tmp_path / "model.safetensors")
    info = inspect_model(path)
    assert (info.format, info.arch, info.name) == ("safetensors", arch, "model")
    assert info.size_bytes == path.stat().st_size
    assert info.prediction_type == (None if arch == "sd2" else "epsilon")
    assert info.native_size == {"sd1": 512, "sd2": 768, "sdxl": 1024}[arch]
    assert info.overrides == TINY[arch]


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sd2v", "sdxl"])
def test_diffusers_folder(tmp_path, arch):
    folder = save_tiny_folder(arch, tmp_path / "tiny")
    info = inspect_model(folder)
    assert (info.format, info.arch, info.name) == ("diffusers", arch_family(arch), "tiny")
    assert info.prediction_type == ("v_prediction" if arch == "sd2v" else "epsilon")
    assert info.native_size == 32 * 2  # tiny UNet sample_size x 2 (two-level VAE)
    assert info.overrides == {}
    assert info.size_bytes > 1_000_000


def test_head_rules():
    assert [unet_heads(c, "sd1") for c in (320, 640, 1280)] == [8, 8, 8]
    assert [unet_heads(c, "sd2") for c in (320, 640, 1280)] == [5, 10, 20]
    assert [text_heads(h) for h in (768, 1024, 1280)] == [12, 16, 20]
    assert unet_heads(32, "sdxl") == 1 and unet_heads(36, "sd1") == 6 and text_heads(32) == 1


def _write_safetensors(path, tensors: dict[str, list[int]], *, header_len=None, cut=0):
    header, off = {}, 0
    for name, shape in tensors.items():
        n = 4
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header).encode()
    data = struct.pack("<Q", header_len if header_len is not None else len(raw)) + raw + b"\0" * off
    path.write_bytes(data[: len(data) - cut] if cut else data)
    return path


@pytest.mark.parametrize(
    "tensors,needle",
    [
        ({"lora_unet_down_blocks_0.alpha": []}, "LoRA"),
        ({"encoder.conv_in.weight": [8, 3, 3, 3], "decoder.conv_out.weight": [3, 8, 3, 3]}, "standalone VAE"),
        ({"down_blocks.0.resnets.0.conv1.weight": [4, 4, 3, 3]}, "diffusers key layout"),
        ({"weight": [2, 2]}, "not a Stable Diffusion checkpoint"),
        ({}, "no tensors"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [32, 4, 3, 3]}, "no VAE"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [32, 4, 3, 3], "first_stage_model.x": [1]}, "no text encoder"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [32, 8, 3, 3], "first_stage_model.x": [1]}, "instruct-pix2pix"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [32, 9, 3, 3], "first_stage_model.x": [1]}, "no text encoder"),
    ],
)
def test_not_a_sd_checkpoint(tmp_path, tensors, needle):
    path = _write_safetensors(tmp_path / "x.safetensors", tensors)
    with pytest.raises(ModelError) as e:
        inspect_model(path)
    assert e.value.argument == "model" and e.value.value == str(path)
    assert needle in str(e.value)


def test_truncated_file(tmp_path):
    path = save_tiny_single_file("sd1", tmp_path / "full.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ModelError, match="truncated") as e:
        inspect_model(cut)
    assert str(cut) in str(e.value) and e.value.argument == "model"


@pytest.mark.parametrize(
    "content,needle",
    [(b"", "too short"), (b"\x01\x02", "too short"), (struct.pack("<Q", 10**12) + b"{}", "header length"),
     (struct.pack("<Q", 4) + b"\xff\xfe{]", "not JSON"), (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
     (b"<html>not found</html>" * 3, "header length")],
)
def test_corrupt_files(tmp_path, content, needle):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=needle) as e:
        inspect_model(path)
    assert e.value.argument == "model"


def test_missing_path_and_unsupported_type(tmp_path):
    with pytest.raises(ModelError, match="no such file") as e:
        inspect_model(tmp_path / "nope.safetensors")
    assert e.value.argument == "model" and "nope.safetensors" in str(e.value)
    (tmp_path / "m.gguf").write_bytes(b"x" * 100)
    with pytest.raises(ModelError, match="unsupported file type .gguf"):
        inspect_model(tmp_path / "m.gguf")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="model_index.json"):
        inspect_model(tmp_path / "folder")


def test_unreadable_file(tmp_path):
    import os

    path = save_tiny_single_file("sd1", tmp_path / "locked.safetensors")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # running as root: permissions do not apply
            pytest.skip("cannot make a file unreadable as this user")
        with pytest.raises(ModelError, match="cannot read"):
            inspect_model(path)
    finally:
        path.chmod(0o644)


def test_a_damaged_pickle_is_a_model_error(tmp_path):
    """A pickle is inspected like a safetensors file (tests/models/test_pickled.py); one that is
    not a readable checkpoint is refused naming `model`."""
    path = tmp_path / "old.ckpt"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 200)
    with pytest.raises(ModelError, match="cannot read the pickle checkpoint") as e:
        inspect_model(path)
    assert e.value.argument == "model"


def test_folder_with_unsupported_pipeline(tmp_path):
    folder = save_tiny_folder("sd1", tmp_path / "f")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="FluxPipeline"):
        inspect_model(folder)


def test_models_package_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, steady.models.detect, steady.models.resolve, steady.models.hashing, steady.models.shipped;"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
