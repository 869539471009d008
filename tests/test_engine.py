"""The main job end to end on a tiny random-weight SD 1.x model: files, rows, metadata, pixels."""

from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pytest
from PIL import Image

from steady.catalog.db import open_catalog
from steady.config import settings
from steady.engine import run_request
from steady.errors import BadInput, OutputError
from steady.images.pngmeta import read_png_info
from steady.params import SAMPLERS, GenerationRequest


@pytest.fixture(scope="session")
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
    results = run_request(request_for(sd1_folder, n_images=2, cfg_scale=5.5, clip_skip=2))
    assert [r.params.seed for r in results] == [1234, 1235]
    cfg = settings()
    catalog = open_catalog(cfg.db_path)
    try:
        rows = catalog.images_of_run(results[0].run_id)
    finally:
        catalog.close()
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
    assert len(results[0].params.model_hash) == 10


def test_same_parameters_same_pixels_and_seed_matters(sd1_folder, tmp_path):
    first = run_request(request_for(sd1_folder, out_dir=str(tmp_path / "a")))[0]
    second = run_request(request_for(sd1_folder, out_dir=str(tmp_path / "b")))[0]
    other = run_request(request_for(sd1_folder, seed=99, out_dir=str(tmp_path / "c")))[0]
    assert np.array_equal(pixels(first.path), pixels(second.path))
    assert not np.array_equal(pixels(first.path), pixels(other.path))


def test_reproduce_from_png_metadata(sd1_folder, tmp_path):
    from steady.params import ImageParams

    original = run_request(request_for(sd1_folder, seed=-1, out_dir=str(tmp_path / "a")))[0]
    assert 0 <= original.params.seed < 2**32  # the drawn seed is recorded
    params = ImageParams.from_dict(read_png_info(original.path).params)
    again = run_request(params.request(model=str(sd1_folder), out_dir=str(tmp_path / "b")))[0]
    assert np.array_equal(pixels(original.path), pixels(again.path))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_is_reproducible(sd1_folder, tmp_path, sampler):
    a = run_request(request_for(sd1_folder, sampler=sampler, out_dir=str(tmp_path / "a")))[0]
    b = run_request(request_for(sd1_folder, sampler=sampler, out_dir=str(tmp_path / "b")))[0]
    assert a.params.sampler == sampler
    assert np.array_equal(pixels(a.path), pixels(b.path)), sampler


def test_no_network_during_load_and_generate(sd1_folder):
    events = []

    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            events.append((event, args))

    sys.addaudithook(hook)  # audit hooks cannot be removed; it only records
    before = len(events)
    run_request(request_for(sd1_folder))
    assert events[before:] == []
    # The hook really fires on a connection attempt (so the assertion above can fail).
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9), timeout=0.2)
    assert any(e == "socket.connect" for e, _ in events[before:])


def test_cancel_mid_image_leaves_no_file(sd1_folder, tmp_path):
    from steady.engine import iter_request

    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 2  # stop inside the first image

    out = tmp_path / "out"
    assert list(iter_request(request_for(sd1_folder, steps=5, n_images=2, out_dir=str(out)), should_stop=should_stop)) == []
    assert not any(out.iterdir())


def test_output_folder_errors_name_out(sd1_folder, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        run_request(request_for(sd1_folder, out_dir=str(blocker / "sub")))
    assert info.value.argument == "out"

    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OutputError, match="disk is full"):
        run_request(request_for(sd1_folder, out_dir=str(tmp_path / "full")))
    assert not any((tmp_path / "full").iterdir())


def test_bad_model_paths_name_model(tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    for model in (tmp_path / "missing.safetensors", corrupt):
        with pytest.raises(BadInput) as info:
            run_request(GenerationRequest(prompt="x", model=str(model)))
        assert info.value.argument == "model"


def test_json_chunk_has_every_parameter(sd1_folder):
    result = run_request(request_for(sd1_folder))[0]
    chunk = json.loads(Image.open(result.path).text["steady"])
    for key in ("prompt", "negative_prompt", "steps", "cfg_scale", "width", "height", "seed", "sampler",
                "clip_skip", "model_name", "model_hash", "model_arch", "device", "dtype"):
        assert key in chunk, key


def test_run_status_records_how_it_ended(sd1_folder, tmp_path):
    from steady.engine import iter_request

    done = run_request(request_for(sd1_folder, out_dir=str(tmp_path / "a")))
    images = iter_request(request_for(sd1_folder, n_images=3, out_dir=str(tmp_path / "b")))
    first = next(images)
    images.close()  # the consumer stops after one image (e.g. the page went away)
    with open_catalog(settings().db_path) as catalog:
        assert catalog.get_run(done[0].run_id).status == "done"
        stopped = catalog.get_run(first.run_id)
    assert (stopped.status, stopped.n_done, stopped.n_requested) == ("cancelled", 1, 3)


def test_cfg_left_out_is_the_models_own(sd1_folder):
    """No CFG given: a checkpoint gets 7 (A1111's default), the embedded model 5 (the scale it was
    trained and evaluated at); the image's PNG and row record the value used. A given CFG is kept."""
    from steady.engine import check_and_plan
    from steady.models.default import EMBEDDED_CFG_SCALE

    checkpoint = request_for(sd1_folder)
    assert checkpoint.cfg_scale is None
    check_and_plan(checkpoint)
    assert checkpoint.cfg_scale == 7.0
    embedded = GenerationRequest(prompt="a red circle")
    check_and_plan(embedded)
    assert embedded.cfg_scale == EMBEDDED_CFG_SCALE == 5.0
    given = GenerationRequest(prompt="a red circle", cfg_scale=9.5)
    check_and_plan(given)
    assert given.cfg_scale == 9.5
    [result] = run_request(request_for(sd1_folder))
    assert result.params.cfg_scale == 7.0 and "CFG scale: 7," in read_png_info(result.path).parameters_text


@pytest.mark.parametrize("bad", [31, -1, True, "7"])
def test_a_bad_cfg_is_refused_naming_it(bad):
    with pytest.raises(BadInput, match="cfg_scale"):
        GenerationRequest(prompt="a red circle", cfg_scale=bad).check()
