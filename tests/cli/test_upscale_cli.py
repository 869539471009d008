"""`steady upscale` through the supervised worker: new images with A1111's postprocessing text,
their source's parameters and a catalog row that links to the source; bad files refused."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from steady.cli import main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("spandrel") is None, reason="spandrel is not installed")


def run_main(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


def _catalog_source(home, tmp_path):
    """A PNG steady wrote, with its catalog row (run 1), as a generation leaves them."""
    from steady.catalog.db import open_catalog
    from steady.images.pngmeta import write_png
    from steady.params import GenerationRequest, ImageParams

    params = ImageParams(prompt="a red circle", negative_prompt="blurry", steps=12, cfg_scale=5.0, width=40, height=24,
                         seed=77, sampler="Euler a", clip_skip=1, model_name="steady-tiny", model_hash="3a368f5e5e",
                         model_arch="sd1", device="cpu", dtype="float32")  # fmt: skip
    rng = np.random.default_rng(3)
    path = write_png(Image.fromarray((rng.random((24, 40, 3)) * 255).astype("uint8")), tmp_path / "src.png", params)
    with open_catalog(home / "catalog.db") as catalog:
        run = catalog.start_run(GenerationRequest("a red circle", negative_prompt="blurry"), "steady-tiny", "3a368f5e5e")
        image_id = catalog.add_image(run, path, 0, params, 1.0)
    return path, image_id


def test_upscale_writes_a_linked_image(_isolated_home, tmp_path, capsys):
    from steady.catalog.db import open_catalog
    from tests.fixtures.upscalers import save_bad_upscaler, save_tiny_esrgan

    home = _isolated_home
    save_tiny_esrgan(home / "upscalers" / "4x-tiny.safetensors")
    save_bad_upscaler(home / "upscalers" / "4x-broken.safetensors")
    source, source_id = _catalog_source(home, tmp_path)
    out = tmp_path / "out"

    code, captured = run_main(["upscale", str(source), "--upscaler", "4x-tiny", "--scale", "2", "--tile", "32",
                               "--out", str(out), "--json"], capsys)  # fmt: skip
    assert code == 0, captured.err
    made = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert len(made) == 1
    path = made[0]["path"]
    with Image.open(path) as im:
        assert im.size == (80, 48)
        assert im.text["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: 4x-tiny"
        assert im.text["parameters"].startswith("a red circle\nNegative prompt: blurry\n")
        assert "Size: 40x24" in im.text["parameters"] and "Seed: 77" in im.text["parameters"]
        assert str(home) not in im.text["steady"]  # the user's folders stay in the catalog
    with open_catalog(home / "catalog.db") as catalog, catalog.reading() as conn:
        row = conn.execute("SELECT width, height, seed, prompt, params_json, run_id, init_image_id, init_hash"
                           " FROM images WHERE path = ?", (path,)).fetchone()  # fmt: skip
        source_hash = conn.execute("SELECT content_hash FROM images WHERE id = ?", (source_id,)).fetchone()[0]
    assert row[:4] == (80, 48, 77, "a red circle") and row[5] != 1
    assert row[6] == source_id and row[7] == source_hash  # the catalog's lineage: "from image #N"
    post = json.loads(row[4])["extra"]["postprocess"]
    assert post["source_image_id"] == source_id and post["source_hash"] == source_hash
    assert post["upscaler"] == "4x-tiny" and post["upscale_by"] == 2.0 and len(post["upscaler_hash"]) == 10
    assert list(out.glob(".*.tmp")) == []

    # A file spandrel cannot identify: one line naming it, exit 2, no image.
    code, captured = run_main(["upscale", str(source), "--upscaler", "4x-broken", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.startswith("steady: error")]
    assert len(lines) == 1 and "upscaler=" in lines[0] and "spandrel" in lines[0]
    assert not list((tmp_path / "bad").glob("*.png"))


def test_bad_arguments_exit_2_before_anything_is_written(_isolated_home, tmp_path, capsys):
    source = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(source)
    for argv, needle in [(["--upscaler", "R-ESRGAN 4x+"], "upscaler="), (["--scale", "20"], "scale="),
                         (["--upscaler", "None"], "upscaler=")]:  # fmt: skip
        code, captured = run_main(["upscale", str(source), *argv, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and needle in captured.err
    assert not (tmp_path / "o").exists() and not (_isolated_home / "catalog.db").exists()


def test_a_folder_is_its_images(tmp_path, capsys):
    from steady.cli.upscale import expand_folders

    (tmp_path / "in").mkdir()
    for name in ("b.png", "a.jpg", ".hidden.png", "notes.txt"):
        (tmp_path / "in" / name).write_bytes(b"x")
    assert expand_folders((str(tmp_path / "in"), "c.png")) == [str(tmp_path / "in" / "a.jpg"),
                                                                str(tmp_path / "in" / "b.png"), "c.png"]  # fmt: skip
    (tmp_path / "empty").mkdir()
    code, captured = run_main(["upscale", str(tmp_path / "empty")], capsys)
    assert code == 2 and "images=" in captured.err
