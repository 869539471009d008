"""The main job end to end, through the one path (check, plan, queue, supervised worker, record),
on a tiny random-weight SD 1.x model: files, rows, metadata, pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import steady
from steady.catalog.db import open_catalog
from steady.config import settings
from steady.errors import BadInput, OutputError
from steady.images.pngmeta import read_png_info
from steady.images.thumbs import thumb_path
from steady.params import SAMPLERS, GenerationRequest, GenerationResult


@pytest.fixture(scope="module")
def sd1_folder(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    path = tmp_path_factory.mktemp("models") / "tiny-sd1"
    save_tiny_folder("sd1", path)
    return path


def request_for(model, **kw):
    base = dict(prompt="a red circle", negative_prompt="blurry", steps=3, width=32, height=32, seed=1234, model=str(model))
    base.update(kw)
    return GenerationRequest(**base)


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_run_writes_files_rows_and_metadata(sd1_folder):
    """steady.generate() with nothing but a request: its own supervisor, worker and catalog."""
    results = steady.generate(request_for(sd1_folder, n_images=2, cfg_scale=5.5, clip_skip=2))
    assert [r.params.seed for r in results] == [1234, 1235]
    cfg = settings()
    with open_catalog(cfg.db_path) as catalog:
        rows = catalog.images_of_run(results[0].run_id)
    assert len(rows) == 2
    for result in results:
        assert result.path.startswith(str(cfg.outputs_dir))
        info = read_png_info(result.path)
        assert info.source == "steady"
        text = info.parameters_text
        assert text.splitlines()[0] == "a red circle"
        assert "Negative prompt: blurry" in text
        assert f"Steps: 3, Sampler: Euler a, CFG scale: 5.5, Seed: {result.params.seed}, Size: 32x32, Model hash: {result.params.model_hash}, Model: tiny-sd1" in text
        assert "Clip skip: 2" in text
        assert Image.open(result.path).size == (32, 32)
        assert result.adherence is not None  # scored, as every image the path makes
        # The grid thumbnail was made ahead, by the worker, and its dominant colour recorded.
        assert Image.open(thumb_path(cfg.thumbs_dir, result.image_id, 256)).size == (32, 32)
    assert len(results[0].params.model_hash) == 10
    assert not any((cfg.thumbs_dir / "new").iterdir())  # each adopted under its image id
    with open_catalog(cfg.db_path) as catalog, catalog.reading() as conn:
        colours = [r[0] for r in conn.execute("SELECT colour FROM images WHERE run_id = ?", (results[0].run_id,))]
    assert len(colours) == 2 and all(c is not None and c >= 0 for c in colours)


def test_dynamic_prompts_are_expanded_by_the_library_api(sd1_folder, sup):
    """steady.generate() takes the same path as the CLI: a {a|b} prompt is drawn per image."""
    results = steady.generate(request_for(sd1_folder, prompt="a {red|blue} circle", n_images=4), supervisor=sup)
    assert {r.params.prompt for r in results} <= {"a red circle", "a blue circle"}
    assert all("{" not in r.params.prompt for r in results)


def test_same_parameters_same_pixels_and_seed_matters(sd1_folder, sup, tmp_path):
    first = steady.generate(request_for(sd1_folder, out_dir=str(tmp_path / "a")), supervisor=sup)[0]
    second = steady.generate(request_for(sd1_folder, out_dir=str(tmp_path / "b")), supervisor=sup)[0]
    other = steady.generate(request_for(sd1_folder, seed=99, out_dir=str(tmp_path / "c")), supervisor=sup)[0]
    assert np.array_equal(pixels(first.path), pixels(second.path))
    assert not np.array_equal(pixels(first.path), pixels(other.path))


def test_reproduce_from_png_metadata(sd1_folder, sup, tmp_path):
    from steady.params import ImageParams

    original = steady.generate(request_for(sd1_folder, seed=-1, out_dir=str(tmp_path / "a")), supervisor=sup)[0]
    assert 0 <= original.params.seed < 2**32  # the drawn seed is recorded
    params = ImageParams.from_dict(read_png_info(original.path).params)
    again = steady.generate(params.request(model=str(sd1_folder), out_dir=str(tmp_path / "b")), supervisor=sup)[0]
    assert np.array_equal(pixels(original.path), pixels(again.path))


def test_every_sampler_is_reproducible(sd1_folder, sup):
    """Each sampler twice in one run (an X/Y grid: samplers by the same seed twice), so the second
    image of a sampler comes after every other sampler has run in the same worker."""
    grid = request_for(sd1_folder, x_axis="Sampler: " + ", ".join(SAMPLERS), y_axis="Seed: 1234, 1234", max_images=100)
    results = steady.generate(grid, supervisor=sup)
    assert len(results) == 2 * len(SAMPLERS)
    first, again = results[: len(SAMPLERS)], results[len(SAMPLERS) :]
    assert [r.params.sampler for r in first] == list(SAMPLERS)
    for a, b in zip(first, again):
        assert b.params.sampler == a.params.sampler
        assert np.array_equal(pixels(a.path), pixels(b.path)), a.params.sampler


def test_cancel_mid_image_leaves_no_file(sd1_folder, sup, tmp_path):
    from steady.jobs.protocol import Progress

    seen = []

    def on_event(event):
        if isinstance(event, Progress):
            seen.append(event)

    out = tmp_path / "out"
    results = steady.generate(request_for(sd1_folder, steps=5, n_images=2, out_dir=str(out)), supervisor=sup,
                              on_event=on_event, should_stop=lambda: len(seen) >= 2)  # fmt: skip
    assert results == [] and seen
    assert not [p for p in out.iterdir() if p.suffix == ".png"]


def test_output_folder_errors_name_out(sd1_folder, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        steady.generate(request_for(sd1_folder, out_dir=str(blocker / "sub")))
    assert info.value.argument == "out"

    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OutputError, match="disk is full"):
        steady.generate(request_for(sd1_folder, out_dir=str(tmp_path / "full")))
    assert not any((tmp_path / "full").iterdir())


def test_bad_model_paths_name_model(tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    for model in (tmp_path / "missing.safetensors", corrupt):
        with pytest.raises(BadInput) as info:
            steady.generate(GenerationRequest(prompt="x", model=str(model)))
        assert info.value.argument == "model"


def test_json_chunk_has_every_parameter(sd1_folder, sup):
    result = steady.generate(request_for(sd1_folder), supervisor=sup)[0]
    chunk = json.loads(Image.open(result.path).text["steady"])
    for key in ("prompt", "negative_prompt", "steps", "cfg_scale", "width", "height", "seed", "sampler",
                "clip_skip", "model_name", "model_hash", "model_arch", "device", "dtype"):
        assert key in chunk, key
    assert chunk["extra"]["threads"] == 1  # the CPU thread count the pixels were made with (sup: threads=1)


def test_run_status_records_how_it_ended(sd1_folder, sup, tmp_path):
    done = steady.generate(request_for(sd1_folder, out_dir=str(tmp_path / "a")), supervisor=sup)
    got: list[GenerationResult] = []

    def on_event(event):
        if isinstance(event, GenerationResult):
            got.append(event)

    # The listener stops after one image (e.g. the page went away).
    steady.generate(request_for(sd1_folder, n_images=3, out_dir=str(tmp_path / "b")), supervisor=sup,
                    on_event=on_event, should_stop=lambda: bool(got))  # fmt: skip
    assert catalog_status(sup, done[0].run_id) == ("done", 1, 1)
    assert catalog_status(sup, got[0].run_id) == ("cancelled", 1, 3)


def catalog_status(sup, run_id):
    run = sup.catalog.get_run(run_id)
    return run.status, run.n_done, run.n_requested


def test_cfg_left_out_is_the_models_own(sd1_folder, sup):
    """No CFG given: a checkpoint gets 7 (A1111's default), the embedded model 5 (the scale it was
    trained and evaluated at, in the defaults file shipped with its weights); the image's PNG and
    row record the value used. A given CFG is kept, and check() returns a new request: the one
    given is not changed."""
    from steady.models.default import embedded_model_path
    from steady.models.defaults import model_defaults
    from steady.request.check import check

    EMBEDDED_CFG_SCALE = model_defaults(embedded_model_path()).cfg_scale

    cfg = settings()
    checkpoint = request_for(sd1_folder)
    assert check(checkpoint, cfg).request.cfg_scale == 7.0
    assert checkpoint.cfg_scale is None
    assert check(GenerationRequest(prompt="a red circle"), cfg).request.cfg_scale == EMBEDDED_CFG_SCALE == 5.0
    assert check(GenerationRequest(prompt="a red circle", cfg_scale=9.5), cfg).request.cfg_scale == 9.5
    [result] = steady.generate(request_for(sd1_folder), supervisor=sup)
    assert result.params.cfg_scale == 7.0 and "CFG scale: 7," in read_png_info(result.path).parameters_text


@pytest.mark.parametrize("bad", [31, -1, True, "7"])
def test_a_bad_cfg_is_refused_naming_it(bad):
    with pytest.raises(BadInput, match="cfg_scale"):
        GenerationRequest(prompt="a red circle", cfg_scale=bad).validate()
