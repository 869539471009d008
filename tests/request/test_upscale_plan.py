"""Upscale requests checked and planned without torch: names, tiles for the memory there is, bad input."""

from __future__ import annotations

import pytest

from steady.config import Settings
from steady.errors import BadInput
from steady.request.upscale import (
    TILE_SIDES,
    UpscaleRequest,
    Upscaler,
    find_upscaler,
    list_upscalers,
    name_scale,
    plan_tiles,
    tile_count,
    tile_peak,
)

GIB = 2**30
ESRGAN = Upscaler("4x-UltraSharp", "/x/4x-UltraSharp.pth", 4)
WEIGHTS = 67 * 2**20  # an RRDBNet of 23 blocks, 64 features, in float32


def test_1024_4x_fits_a_6gb_gpu_and_the_cpu_in_tiles():
    # A 6 GB card with the desktop and CUDA context taken: about 4.5 GiB for the model.
    gpu = plan_tiles(1024, 1024, 4, ESRGAN, device="cuda", dtype="float16", budget_bytes=int(4.5 * GIB),
                     ram_budget_bytes=8 * GIB, weights_bytes=WEIGHTS // 2)
    assert 0 < gpu.tile < 1024 and gpu.peak_bytes <= 4.5 * GIB and gpu.tiles == tile_count(1024, 1024, gpu.tile, gpu.overlap)
    assert f"tiles of {gpu.tile} px" in gpu.describe() and "4096x4096" in gpu.describe()
    # A 16 GB machine with 6 GiB to spare: the canvas (4096x4096) and a tile's activations in RAM.
    cpu = plan_tiles(1024, 1024, 4, ESRGAN, device="cpu", dtype="float32", budget_bytes=6 * GIB,
                     ram_budget_bytes=6 * GIB, weights_bytes=WEIGHTS)
    assert 0 < cpu.tile <= 256 and cpu.peak_bytes <= 6 * GIB and cpu.ram_bytes < cpu.peak_bytes
    # With less free (a 4 GB card, say) the tile is the largest that fits: the next size up would not.
    small = plan_tiles(1024, 1024, 4, ESRGAN, device="cuda", dtype="float16", budget_bytes=GIB,
                       ram_budget_bytes=8 * GIB, weights_bytes=WEIGHTS // 2)  # fmt: skip
    assert 0 < small.tile < gpu.tile and small.peak_bytes <= GIB
    bigger = TILE_SIDES[TILE_SIDES.index(small.tile) - 1]
    assert tile_peak(bigger, 4, 2, WEIGHTS // 2) > GIB


def test_small_images_are_one_tile_and_builtins_need_no_tiles():
    one = plan_tiles(64, 48, 4, ESRGAN, device="cpu", dtype="float32", budget_bytes=4 * GIB, ram_budget_bytes=4 * GIB)
    assert one.tile == 0 and one.tiles == 1 and "one tile" in one.describe()
    lanczos = plan_tiles(1024, 1024, 4, Upscaler("Lanczos"), device="cpu", dtype="uint8", budget_bytes=GIB,
                         ram_budget_bytes=GIB)  # fmt: skip
    assert lanczos.tile == 0 and lanczos.passes == 1


def test_too_little_memory_is_refused_naming_tile():
    with pytest.raises(BadInput) as info:
        plan_tiles(1024, 1024, 4, ESRGAN, device="cuda", dtype="float16", budget_bytes=64 * 2**20,
                   ram_budget_bytes=8 * GIB, weights_bytes=WEIGHTS)  # fmt: skip
    assert info.value.argument == "tile" and "free" in info.value.why
    with pytest.raises(BadInput) as info:  # a tile given that cannot fit
        plan_tiles(1024, 1024, 4, ESRGAN, device="cuda", dtype="float16", budget_bytes=GIB, ram_budget_bytes=8 * GIB,
                   tile=1024)  # fmt: skip
    assert info.value.argument == "tile" and info.value.value == 1024


def test_several_passes_are_planned_on_the_last_pass_size():
    x2 = Upscaler("2x-Compact", "/x/2x.safetensors", 2)
    p = plan_tiles(256, 256, 8, x2, device="cpu", dtype="float32", budget_bytes=8 * GIB, ram_budget_bytes=8 * GIB)
    assert p.passes == 3 and "3 passes" in p.describe()


@pytest.mark.parametrize("name,scale", [("4x-UltraSharp", 4), ("RealESRGAN_x2plus", 2), ("ESRGAN_4x", 4),
                                        ("SwinIR_classicalSR_x3", 3), ("1x_ReFocus", 1), ("BSRGAN", 4)])
def test_scale_from_name(name, scale):
    assert name_scale(name) == scale


def test_listing_prefers_safetensors_and_names_what_exists(tmp_path):
    cfg = Settings(home=tmp_path)
    (tmp_path / "upscalers" / "sub").mkdir(parents=True)
    (tmp_path / "upscalers" / "4x-UltraSharp.pth").write_bytes(b"x")
    (tmp_path / "upscalers" / "4x-UltraSharp.safetensors").write_bytes(b"x")
    (tmp_path / "upscalers" / "sub" / "RealESRGAN_x2plus.pth").write_bytes(b"x")
    (tmp_path / "upscalers" / "notes.txt").write_text("x")
    names = [u.name for u in list_upscalers(cfg)]
    assert names == ["None", "Lanczos", "Nearest", "4x-UltraSharp", "RealESRGAN_x2plus"]
    assert find_upscaler("4x-ultrasharp", cfg).path.endswith(".safetensors")
    assert find_upscaler("lanczos", cfg).builtin
    with pytest.raises(BadInput) as info:
        find_upscaler("R-ESRGAN 4x+", cfg)
    assert info.value.argument == "upscaler" and "4x-UltraSharp" in info.value.why


def test_upscaler_dir_setting(tmp_path):
    (tmp_path / "config.toml").write_text(f'upscaler_dir = "{tmp_path / "esrgan"}"\n')
    assert Settings(home=tmp_path).upscaler_dir == tmp_path / "esrgan"


@pytest.mark.parametrize("kwargs,argument", [
    ({"images": ()}, "images"), ({"scale": 0.5}, "scale"), ({"scale": 9}, "scale"), ({"scale": float("nan")}, "scale"),
    ({"scale": True}, "scale"), ({"tile": 8}, "tile"), ({"tile": -1}, "tile"), ({"upscaler": ""}, "upscaler"),
])  # fmt: skip
def test_request_bounds(kwargs, argument):
    with pytest.raises(BadInput) as info:
        UpscaleRequest(**{"images": ("a.png",), **kwargs}).validate()
    assert info.value.argument == argument


def test_check_refuses_what_is_not_an_image(tmp_path):
    from steady.request.upscale import check_upscale

    cfg = Settings(home=tmp_path)
    text = tmp_path / "photo.png"
    text.write_text("not a png")
    for path, needle in [(text, "not an image"), (tmp_path / "missing.png", "no such file")]:
        with pytest.raises(BadInput) as info:
            check_upscale(UpscaleRequest((str(path),)), cfg)
        assert info.value.argument == "images" and needle in info.value.why
    assert not (tmp_path / "outputs").exists()


def test_check_refuses_a_decompression_bomb(tmp_path):
    import zlib

    from steady.request.upscale import check_upscale

    # A 30000x30000 greyscale PNG of zeros: a few hundred kB on disk, 900 megapixels decoded.
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    side = 30000
    raw = zlib.compress(b"".join(b"\x00" + bytes(side) for _ in range(64)))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) + chunk(b"IDAT", raw)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png + chunk(b"IEND", b""))
    with pytest.raises(BadInput) as info:
        check_upscale(UpscaleRequest((str(bomb),)), Settings(home=tmp_path))
    assert info.value.argument == "images" and ("bomb" in info.value.why or "pixels" in info.value.why)


def test_a1111_folders_and_names(tmp_path):
    """With a1111_dir, models/ESRGAN and its siblings (RealESRGAN, SwinIR) are read, and A1111's own
    names for its upscalers find their files."""
    webui = tmp_path / "webui"
    for folder, name in [("ESRGAN", "4x-UltraSharp.pth"), ("RealESRGAN", "RealESRGAN_x4plus.pth"),
                         ("SwinIR", "SwinIR_4x.pth")]:  # fmt: skip
        (webui / "models" / folder).mkdir(parents=True)
        (webui / "models" / folder / name).write_bytes(b"x")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.toml").write_text(f'a1111_dir = "{webui}"\n')
    cfg = Settings(home=tmp_path / "home")
    assert [u.name for u in list_upscalers(cfg)][3:] == ["4x-UltraSharp", "RealESRGAN_x4plus", "SwinIR_4x"]
    assert find_upscaler("R-ESRGAN 4x+", cfg).path.endswith("RealESRGAN/RealESRGAN_x4plus.pth")
    assert find_upscaler("SwinIR 4x", cfg).name == "SwinIR_4x"
    with pytest.raises(BadInput):
        find_upscaler("R-ESRGAN 2x+", cfg)  # its file is not there: nothing is downloaded
