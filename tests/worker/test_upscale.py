"""Upscalers through spandrel and the tiled runner: tiny random models in both file formats, bad files."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from PIL import Image

from steady.errors import BadInput
from tests.fixtures.upscalers import save_bad_upscaler, save_tiny_compact, save_tiny_esrgan

pytestmark = pytest.mark.skipif(importlib.util.find_spec("spandrel") is None,
                                reason="spandrel is not installed (pip install 'steady[upscalers]')")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("upscalers")
    return {
        "st": save_tiny_esrgan(d / "4x-tiny.safetensors"),
        "pth": save_tiny_esrgan(d / "4x-tiny.pth"),
        "compact": save_tiny_compact(d / "2x-compact.safetensors", scale=2),
        "bad": save_bad_upscaler(d / "bad.safetensors"),
        "bad_pth": save_bad_upscaler(d / "bad.pth"),
    }


def _image(w: int = 40, h: int = 28, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8"))


def test_both_formats_load_as_esrgan_and_agree(files):
    from steady.worker.upscale import load_upscaler, upscale

    a, b = load_upscaler(str(files["st"])), load_upscaler(str(files["pth"]))
    assert a.architecture.name == "ESRGAN" and a.scale == 4
    img = _image()
    out_a, out_b = upscale(img, a, 4), upscale(img, b, 4)
    assert out_a.size == (160, 112)
    assert np.array_equal(np.asarray(out_a), np.asarray(out_b))


def test_spandrel_import_leaves_no_torchvision_stand_in(files):
    from steady.worker.upscale import spandrel_module

    spandrel_module()
    tv = sys.modules.get("torchvision")
    assert tv is None or getattr(tv, "__file__", None), "the stand-in must not outlive spandrel's import"


def test_tiles_blend_without_seams(files):
    """Tiled and whole-image results agree closely (the overlap blends away the tiles' edges), and
    the tiled path really did run several tiles."""
    from steady.worker.upscale import load_upscaler, tile_boxes, upscale

    model = load_upscaler(str(files["st"]))
    img = _image(56, 40, seed=1)
    seen = []
    tiled = np.asarray(upscale(img, model, 4, tile=32, overlap=8, on_tile=lambda d, t: seen.append((d, t)) or True), float)
    whole = np.asarray(upscale(img, model, 4, tile=0), float)
    assert len(seen) == len(tile_boxes(56, 40, 32, 8)) >= 4 and seen[-1][0] == seen[-1][1]
    diff = np.abs(tiled - whole)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 3, (diff.mean(), diff.max())


def test_tile_boxes_cover_every_pixel():
    from steady.worker.upscale import tile_boxes

    for w, h, t, o in [(100, 37, 32, 8), (33, 33, 32, 8), (10, 10, 64, 8), (200, 90, 48, 16)]:
        covered = np.zeros((h, w), int)
        for x0, y0, x1, y1 in tile_boxes(w, h, t, o):
            assert x1 - x0 <= max(t, 1) and y1 - y0 <= max(t, 1)
            covered[y0:y1, x0:x1] += 1
        assert covered.min() >= 1


def test_scales_passes_and_builtins(files):
    from steady.worker.upscale import load_upscaler, passes_needed, upscale

    compact = load_upscaler(str(files["compact"]))
    assert compact.architecture.name in ("RealESRGAN Compact", "Compact") or compact.scale == 2
    img = _image(20, 12)
    assert upscale(img, compact, 8, tile=16).size == (160, 96)  # three passes of a 2x model
    assert passes_needed(8, 2) == 3 and passes_needed(3, 4) == 1 and passes_needed(16, 2) == 3
    assert upscale(img, compact, 1.5).size == (30, 18)
    near = np.asarray(upscale(img, "nearest", 4))
    assert near.shape == (48, 80, 3)
    assert np.array_equal(near[::4, ::4], np.asarray(img))  # every 4x4 block is its source pixel
    assert upscale(img, "Lanczos", 2.5).size == (50, 30)


@pytest.mark.parametrize("which,needle", [("bad", "spandrel can"), ("bad_pth", "spandrel can")])
def test_unidentifiable_file_is_bad_input(files, which, needle):
    from steady.worker.upscale import load_upscaler

    with pytest.raises(BadInput) as info:
        load_upscaler(str(files[which]))
    assert info.value.argument == "upscaler" and needle in str(info.value)


def test_garbage_and_unsafe_pickles_are_refused(tmp_path):
    import pickle

    from steady.worker.upscale import load_upscaler

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(BadInput, match="upscaler="):
        load_upscaler(str(junk))
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"a": print}))  # a global weights_only=True must not call or build
    with pytest.raises(BadInput, match="cannot be read"):
        load_upscaler(str(evil))


def test_peak_rss_sees_memory_held_only_inside_the_block():
    import psutil

    from steady.worker.upscale import PeakRss

    import mmap
    import time

    me = psutil.Process()
    before = me.memory_info().rss
    with PeakRss(me, every=0.005) as watch:
        # Fresh anonymous pages, made resident: a bytearray could reuse heap memory that is already
        # resident (after other tests, malloc's thresholds may keep 96 MiB on the heap).
        block = mmap.mmap(-1, 96 * 2**20)
        for offset in range(0, len(block), mmap.PAGESIZE):
            block[offset] = 1
        time.sleep(0.1)
        block.close()
    assert watch.peak >= before + 80 * 2**20


def test_spandrel_imports_beside_a_torchvision_that_cannot_load(tmp_path):
    """PyPI's torchvision is a CUDA build; beside a CPU-only torch its import fails with a
    RuntimeError. spandrel still loads ESRGAN then, and nothing else sees a torchvision."""
    import os
    import subprocess

    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    code = ("import sys; from steady.worker.upscale import spandrel_module, load_upscaler; spandrel_module(); "
            f"m = load_upscaler({str(tmp_path / 'm.safetensors')!r}); assert m.scale == 4; "
            "assert 'torchvision' not in sys.modules; print('ok')")  # fmt: skip
    save_tiny_esrgan(tmp_path / "m.safetensors")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
