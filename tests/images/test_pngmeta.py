"""Our PNG metadata: A1111 text exactly, round trips, golden A1111 texts, atomic writes."""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo as PilPngInfo

from steady import __version__
from steady.errors import BadInput, OutputError
from steady.images import pngmeta
from steady.images.pngmeta import a1111_parameters, is_temp_name, read_png_info, write_png
from steady.params import ImageParams


def make_params(**overrides) -> ImageParams:
    base = dict(
        prompt="a red fox in the snow, detailed",
        negative_prompt="",
        steps=20,
        cfg_scale=7.0,
        width=512,
        height=512,
        seed=1234,
        sampler="Euler a",
        clip_skip=1,
        model_name="v1-5-pruned-emaonly",
        model_hash="6ce0161689",
        model_arch="sd1",
        device="cpu",
        dtype="float32",
        steady_version="0.1.0",
    )
    base.update(overrides)
    return ImageParams(**base)


def small_image() -> Image.Image:
    return Image.new("RGB", (8, 8), (200, 40, 40))


def foreign_png(path, **texts) -> str:
    """A PNG as another tool writes it: text chunks through Pillow's PngInfo.add_text."""
    chunks = PilPngInfo()
    for key, value in texts.items():
        chunks.add_text(key.replace("_", "-") if key == "sd_metadata" else key, value)
    small_image().save(path, format="PNG", pnginfo=chunks)
    return str(path)


# ------------------------------------------------------------------------- A1111 text, ours


def test_a1111_text_exact():
    text = a1111_parameters(make_params())
    assert text == (
        "a red fox in the snow, detailed\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: steady 0.1.0"
    )


def test_a1111_text_negative_clip_skip_and_fractional_cfg():
    text = a1111_parameters(make_params(negative_prompt="blurry, lowres", clip_skip=2, cfg_scale=7.5, width=768))
    assert text.splitlines() == [
        "a red fox in the snow, detailed",
        "Negative prompt: blurry, lowres",
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 768x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, Version: steady 0.1.0",
    ]


def test_a1111_text_version_defaults_to_package_and_empty_model_left_out():
    text = a1111_parameters(make_params(steady_version="", model_hash="", model_name=""))
    assert text.endswith(f"Size: 512x512, Version: steady {__version__}")


def test_round_trip_our_file(tmp_path):
    params = make_params(prompt="line one\nline two: with colon", negative_prompt="ugly\nblurry", clip_skip=2,
                         cfg_scale=6.5, extra={"note": "é ✓"})
    path = write_png(small_image(), tmp_path / "out" / "a.png", params)
    assert path == tmp_path / "out" / "a.png"
    info = read_png_info(path)
    assert info.source == "steady" and info.warnings == []
    assert ImageParams.from_dict(info.params) == params
    assert info.image_params() == params
    assert info.parameters_text == a1111_parameters(params)
    assert json.loads(info.raw["steady"]) == params.to_dict()
    assert os.listdir(tmp_path / "out") == ["a.png"]


def test_our_a1111_text_parses_back_like_a1111(tmp_path):
    params = make_params(negative_prompt="ugly,\nbad hands", clip_skip=3, cfg_scale=4.25)
    path = tmp_path / "a.png"
    chunks = PilPngInfo()
    chunks.add_text("parameters", a1111_parameters(params))  # as if A1111 had written our text
    small_image().save(path, pnginfo=chunks)
    info = read_png_info(path)
    assert info.source == "a1111"
    for name in ("prompt", "negative_prompt", "steps", "cfg_scale", "seed", "width", "height", "sampler",
                 "clip_skip", "model_name", "model_hash"):
        assert info.params[name] == getattr(params, name), name
    assert info.params["Version"] == "steady 0.1.0"


# ------------------------------------------------------------------------- golden A1111 texts

A1111_CLIP_SKIP = (
    "masterpiece, best quality, 1girl, (looking at viewer:1.2), <lora:add_detail:0.8>\n"
    "Negative prompt: (worst quality, low quality:1.4), bad anatomy\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 3442133617, Size: 512x768, "
    "Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.5, Clip skip: 2, Hires upscale: 2, "
    "Hires steps: 15, Hires upscaler: Latent, Lora hashes: \"add_detail: 7c6bad76eb54\", "
    "TI hashes: \"easynegative: c74b4e810b03, bad-hands-5: aa7651be154c\", Version: v1.6.0"
)

A1111_QUOTED = (
    "a cozy cabin in the woods, winter, warm light\n"
    "Negative prompt: lowres\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 42, Size: 832x1216, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: \"a: 1, b: 2\", "
    "Hires prompt: \"a cozy cabin, \\\"quoted\\\"\\nsecond line\", Emphasis: Original, Version: v1.10.1"
)

A1111_MULTILINE_NEGATIVE = (
    "portrait of an old sailor,\n"
    "oil painting, dramatic lighting\n"
    "Negative prompt: cartoon, 3d,\n"
    "blurry, watermark,\n"
    "text\n"
    "Steps: 30, Sampler: Euler a, CFG scale: 7, Seed: 2089391470, Size: 512x512, Model hash: 6ce0161689, "
    "Model: v1-5-pruned-emaonly, Version: v1.7.0"
)

A1111_OLD = (  # the example in A1111's own parse_generation_parameters docstring (2022)
    "girl with an artist's beret, determined, blue eyes, desert scene\n"
    "Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry]\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"
)


def test_golden_a1111_with_clip_skip(tmp_path):
    info = read_png_info(foreign_png(tmp_path / "a.png", parameters=A1111_CLIP_SKIP))
    assert info.source == "a1111" and info.warnings == []
    assert info.parameters_text == A1111_CLIP_SKIP
    p = info.params
    assert p["prompt"] == "masterpiece, best quality, 1girl, (looking at viewer:1.2), <lora:add_detail:0.8>"
    assert p["negative_prompt"] == "(worst quality, low quality:1.4), bad anatomy"
    assert (p["steps"], p["sampler"], p["cfg_scale"], p["seed"]) == (28, "DPM++ 2M Karras", 7.5, 3442133617)
    assert (p["width"], p["height"], p["clip_skip"]) == (512, 768, 2)
    assert (p["model_hash"], p["model_name"]) == ("7f96a1a9ca", "anything-v5")
    assert p["Denoising strength"] == "0.5" and p["Hires upscaler"] == "Latent"
    assert p["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert p["TI hashes"] == "easynegative: c74b4e810b03, bad-hands-5: aa7651be154c"
    assert p["Version"] == "v1.6.0"


def test_golden_a1111_quoted_values(tmp_path):
    info = read_png_info(foreign_png(tmp_path / "a.png", parameters=A1111_QUOTED))
    p = info.params
    assert p["Lora hashes"] == "a: 1, b: 2"
    assert p["Hires prompt"] == 'a cozy cabin, "quoted"\nsecond line'
    assert p["Schedule type"] == "Karras" and p["Emphasis"] == "Original"
    assert (p["sampler"], p["cfg_scale"], p["width"], p["height"]) == ("DPM++ 2M", 6.0, 832, 1216)
    assert p["clip_skip"] == 1  # absent means A1111's default


def test_golden_a1111_multiline_negative(tmp_path):
    info = read_png_info(foreign_png(tmp_path / "a.png", parameters=A1111_MULTILINE_NEGATIVE))
    assert info.params["prompt"] == "portrait of an old sailor,\noil painting, dramatic lighting"
    assert info.params["negative_prompt"] == "cartoon, 3d,\nblurry, watermark,\ntext"
    assert info.params["seed"] == 2089391470


def test_golden_a1111_old_and_prompt_only(tmp_path):
    info = read_png_info(foreign_png(tmp_path / "a.png", parameters=A1111_OLD))
    assert info.params["model_hash"] == "45dee52b" and "model_name" not in info.params
    assert info.params["negative_prompt"].endswith("[blurry]")
    only = read_png_info(foreign_png(tmp_path / "b.png", parameters="just a prompt: nothing else, really"))
    assert only.params["prompt"] == "just a prompt: nothing else, really" and "steps" not in only.params


def test_a1111_bad_numbers_warn_and_keep_text(tmp_path):
    text = "cat\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: 12, Size: big"
    info = read_png_info(foreign_png(tmp_path / "a.png", parameters=text))
    assert info.params["Steps"] == "many" and "steps" not in info.params
    assert info.params["Size"] == "big"
    assert len(info.warnings) == 2 and "Steps" in info.warnings[0]


def test_non_latin1_text_goes_to_itxt_and_back(tmp_path):
    params = make_params(prompt="富士山と桜, 🌸")
    info = read_png_info(write_png(small_image(), tmp_path / "a.png", params))
    assert info.params["prompt"] == "富士山と桜, 🌸"
    assert info.parameters_text.splitlines()[0] == "富士山と桜, 🌸"


# ------------------------------------------------------------------------- damaged and non-PNG


def test_malformed_steady_chunk_falls_back_to_a1111_text(tmp_path):
    path = foreign_png(tmp_path / "a.png", parameters=A1111_OLD, steady="{not json")
    info = read_png_info(path)
    assert info.source == "steady"
    assert info.params["seed"] == 965400086
    assert any("not valid JSON" in w for w in info.warnings)
    assert info.image_params() is not None  # A1111 text had every field the catalog needs


def test_wrong_types_in_steady_chunk_warn(tmp_path):
    data = make_params().to_dict()
    data.update(steps="twenty", seed=True, prompt=5)
    info = read_png_info(foreign_png(tmp_path / "a.png", steady=json.dumps(data)))
    assert info.source == "steady"
    assert "steps" not in info.params and "seed" not in info.params and "prompt" not in info.params
    assert info.params["width"] == 512
    assert len(info.warnings) == 3
    assert info.image_params() is None
    del data["steps"], data["seed"], data["prompt"]
    lacking = read_png_info(foreign_png(tmp_path / "c.png", steady=json.dumps(data)))
    assert lacking.warnings == ["steady chunk lacks prompt, steps, seed"]
    list_chunk = read_png_info(foreign_png(tmp_path / "b.png", steady="[1, 2]"))
    assert list_chunk.source == "steady" and "not an object" in list_chunk.warnings[0]


def test_no_metadata(tmp_path):
    path = tmp_path / "plain.png"
    small_image().save(path)
    info = read_png_info(path)
    assert (info.source, info.parameters_text, info.params, info.warnings) == ("none", "", {}, [])


def test_missing_folder_not_png_and_garbage_raise_badinput_naming_path(tmp_path):
    jpeg = tmp_path / "a.jpg"
    small_image().save(jpeg, format="JPEG")
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"not an image at all")
    for target, why in ((tmp_path / "missing.png", "no such file"), (tmp_path, "folder"),
                        (jpeg, "JPEG"), (garbage, "not a PNG")):
        with pytest.raises(BadInput) as caught:
            read_png_info(target)
        assert caught.value.argument == "path" and caught.value.value == str(target)
        assert why in str(caught.value)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_decompression_bomb_limit_stays_on(tmp_path):
    # A 100000x100000 header (10 gigapixels) with no pixel data: Pillow must refuse it
    # before decoding anything.
    bomb = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b""))
    with pytest.raises(BadInput) as caught:
        read_png_info(bomb)
    assert "decompression bomb" in str(caught.value).lower()


def test_text_after_image_data_is_found(tmp_path):
    path = tmp_path / "late.png"
    small_image().save(path)
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    late = _chunk(b"tEXt", b"parameters\x00" + A1111_OLD.encode("latin-1"))
    path.write_bytes(data[:iend] + late + data[iend:])
    assert read_png_info(path).params["seed"] == 965400086


# ------------------------------------------------------------------------- atomic writes


def _leftovers(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_disk_full_during_fsync_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pngmeta.os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        write_png(small_image(), tmp_path / "a.png", make_params())
    assert caught.value.argument == "out" and caught.value.value == str(tmp_path)
    assert "disk is full" in str(caught.value)
    assert _leftovers(tmp_path) == []


class _HalfWritingImage:
    """Writes part of a PNG, then fails as a full disk would."""

    def save(self, handle, **kwargs):
        handle.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")


def test_failure_mid_write_keeps_old_file_whole(tmp_path):
    target = tmp_path / "a.png"
    write_png(small_image(), target, make_params(seed=1))
    before = target.read_bytes()
    with pytest.raises(OutputError):
        write_png(_HalfWritingImage(), target, make_params(seed=2))
    assert target.read_bytes() == before  # never a truncated PNG
    assert _leftovers(tmp_path) == ["a.png"]


def test_failure_at_rename_leaves_nothing(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(pngmeta.os, "replace", broken)
    with pytest.raises(OutputError) as caught:
        write_png(small_image(), tmp_path / "a.png", make_params())
    assert "Input/output error" in str(caught.value)
    assert _leftovers(tmp_path) == []


def test_interrupt_mid_write_removes_temp_and_propagates(tmp_path):
    class Interrupting:
        def save(self, handle, **kwargs):
            handle.write(b"partial")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_png(Interrupting(), tmp_path / "a.png", make_params())
    assert _leftovers(tmp_path) == []


def test_unwritable_folder_names_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as caught:
        write_png(small_image(), blocker / "sub" / "a.png", make_params())
    assert caught.value.argument == "out" and caught.value.value == str(blocker / "sub")


def test_temp_names_are_recognised(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(pngmeta.os, "replace", spy)
    write_png(small_image(), tmp_path / "a.png", make_params())
    assert len(seen) == 1 and is_temp_name(seen[0]) and seen[0].startswith(".a.png.")
    assert not is_temp_name("a.png") and not is_temp_name(".hidden.tmp") and not is_temp_name("x.12345678.tmp")


def test_a_truncated_png_is_called_truncated(tmp_path):
    """Cut inside its chunks: refused as truncated (not "not a PNG image"); cut inside the image
    data after the text chunks: read, with a warning that the image data is incomplete."""
    whole = write_png(small_image(), tmp_path / "whole.png", make_params()).read_bytes()
    cut = tmp_path / "cut.png"
    for size in (3, 8, 20, 40, 100):
        cut.write_bytes(whole[:size])
        with pytest.raises(BadInput) as caught:
            read_png_info(cut)
        assert caught.value.argument == "path" and f"is a truncated PNG ({size} bytes" in caught.value.why
    cut.write_bytes(whole[:-20])
    info = read_png_info(cut)
    assert info.source == "steady" and any("truncated" in w for w in info.warnings)
    assert read_png_info(tmp_path / "whole.png").warnings == []
    cut.write_bytes(b"")
    with pytest.raises(BadInput, match="is empty"):
        read_png_info(cut)


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, capsys):
    from tests.fixtures.cli import run_main

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(BadInput, match="not a regular file"):
        read_png_info(fifo)
    code, out = run_main(["info", str(fifo)], capsys)
    assert code == 2 and out.err.startswith(f"steady: error: image='{fifo}': is not a regular file")


def test_a_chunk_pillow_refuses_does_not_hide_the_others(tmp_path):
    """A zTXt chunk with an unknown compression method made Pillow refuse the whole file ("not a
    PNG image", found by fuzzing); the text chunks are then read one by one, the bad one passed over."""
    whole = write_png(small_image(), tmp_path / "ok.png", make_params(prompt="a lighthouse")).read_bytes()
    bad = whole[:33] + _chunk(b"zTXt", b"Comment\x00\x01junk") + whole[33:]
    (tmp_path / "bad.png").write_bytes(bad)
    info = read_png_info(tmp_path / "bad.png")
    assert info.source == "steady" and info.params["prompt"] == "a lighthouse"
    assert any("read one by one" in w for w in info.warnings) and any("compression method" in w for w in info.warnings)
