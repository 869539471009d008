"""Catalog writes and reads: runs, images, prompts, history queries, errors, threads."""

from __future__ import annotations

import json
import threading

import pytest

from steady.catalog import ImageRecord, RunSummary, open_catalog
from steady.errors import BadInput


def test_run_lifecycle(catalog, tmp_path, params_factory, request_factory, png_writer):
    request = request_factory()
    run_id = catalog.start_run(request, "tiny-sd1", "0123456789")
    paths = []
    for index in range(2):
        params = params_factory(seed=1234 + index)
        paths.append(png_writer(tmp_path / "out" / f"{index}.png", params))
        image_id = catalog.add_image(run_id, paths[-1], index, params, 1.5 + index, peak_rss_bytes=100, peak_vram_bytes=7)
        record = catalog.get_image(image_id)
        assert isinstance(record, ImageRecord)
        assert record.params == params and record.index == index and record.seed == 1234 + index
        assert record.path == str(paths[-1].resolve()) and record.file_name == f"{index}.png"
        assert record.file_size == paths[-1].stat().st_size and record.peak_vram_bytes == 7
        assert (record.favourite, record.rejected) == (False, False)
    catalog.finish_run(run_id, "done")
    (run,) = catalog.recent_runs()
    assert isinstance(run, RunSummary)
    assert (run.id, run.prompt, run.negative_prompt, run.status) == (run_id, "a lighthouse at dusk", "blurry", "done")
    assert (run.n_requested, run.n_done, run.model_name, run.model_hash) == (2, 2, "tiny-sd1", "0123456789")
    assert run.first_image_path == str(paths[0].resolve())
    assert run.created_at <= run.finished_at
    assert [r.index for r in catalog.images_of_run(run_id)] == [0, 1]
    assert catalog.get_image(999) is None and catalog.images_of_run(999) == []
    with catalog.reading() as conn:
        stored = json.loads(conn.execute("SELECT request_json FROM runs").fetchone()[0])
    assert stored == request.to_dict()


def test_prompt_rows_are_shared(catalog, request_factory):
    first = catalog.start_run(request_factory(), "m", "h")
    second = catalog.start_run(request_factory(), "m", "h")
    other = catalog.start_run(request_factory(negative_prompt=""), "m", "h")
    runs = {run.id: run for run in catalog.recent_runs()}
    assert runs[first].prompt_id == runs[second].prompt_id != runs[other].prompt_id


def test_recent_runs_newest_first_and_limit(catalog, request_factory):
    ids = [catalog.start_run(request_factory(prompt=f"prompt {n}"), "m", "h") for n in range(5)]
    assert [run.id for run in catalog.recent_runs(limit=3)] == ids[::-1][:3]
    for bad in (0, -1, "3", True):
        with pytest.raises(BadInput) as caught:
            catalog.recent_runs(limit=bad)
        assert caught.value.argument == "limit"


def test_prompt_iterations_oldest_first_any_case(catalog, request_factory):
    a = catalog.start_run(request_factory(prompt="a CAFÉ at night"), "m", "h")
    catalog.start_run(request_factory(prompt="a forest"), "m", "h")
    b = catalog.start_run(request_factory(prompt="a café at night, rain"), "m", "h")
    assert [run.id for run in catalog.prompt_iterations("Café AT")] == [a, b]
    assert catalog.prompt_iterations("nothing like this") == []


def test_errors_name_the_argument(catalog, tmp_path, params_factory, request_factory, png_writer):
    run_id = catalog.start_run(request_factory(), "m", "h")
    with pytest.raises(BadInput) as caught:
        catalog.add_image(run_id, tmp_path / "missing.png", 0, params_factory(), 1.0)
    assert caught.value.argument == "path"
    path = png_writer(tmp_path / "a.png", params_factory())
    with pytest.raises(BadInput) as caught:
        catalog.add_image(run_id + 100, path, 0, params_factory(), 1.0)
    assert caught.value.argument == "run_id"
    with pytest.raises(BadInput) as caught:
        catalog.finish_run(run_id, "finished")
    assert caught.value.argument == "status"
    with pytest.raises(BadInput) as caught:
        catalog.finish_run(run_id + 100, "done")
    assert caught.value.argument == "run_id"
    assert catalog.images_of_run(run_id) == []


def test_same_path_twice_updates_and_moves_the_row(catalog, tmp_path, params_factory, request_factory, png_writer):
    first = catalog.start_run(request_factory(), "m", "h")
    second = catalog.start_run(request_factory(), "m", "h")
    path = png_writer(tmp_path / "a.png", params_factory())
    image_id = catalog.add_image(first, path, 0, params_factory(), 1.0)
    with catalog.transaction() as conn:
        conn.execute("UPDATE images SET favourite = 1")
    assert catalog.add_image(second, path, 3, params_factory(), 2.0) == image_id
    record = catalog.get_image(image_id)
    assert (record.run_id, record.index, record.seconds, record.favourite) == (second, 3, 2.0, True)
    runs = {run.id: run.n_done for run in catalog.recent_runs()}
    assert runs == {first: 0, second: 1}


def test_failed_write_leaves_no_row(catalog, tmp_path, params_factory, request_factory, png_writer, monkeypatch):
    from steady.catalog import db

    run_id = catalog.start_run(request_factory(), "m", "h")
    path = png_writer(tmp_path / "a.png", params_factory())

    def broken(conn, run_ids):
        raise RuntimeError("crash inside the transaction")

    monkeypatch.setattr(db, "recount_runs", broken)
    with pytest.raises(RuntimeError):
        catalog.add_image(run_id, path, 0, params_factory(), 1.0)
    assert catalog.images_of_run(run_id) == []


def test_threads_share_one_catalog(catalog, tmp_path, params_factory, request_factory, png_writer):
    run_id = catalog.start_run(request_factory(n_images=40), "m", "h")
    params = params_factory()
    paths = [png_writer(tmp_path / f"{n}.png", params) for n in range(40)]
    errors = []

    def worker(offset):
        try:
            for n in range(offset, 40, 4):
                catalog.add_image(run_id, paths[n], n, params, 0.1)
                catalog.recent_runs()
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.index for r in catalog.images_of_run(run_id)] == list(range(40))
    assert catalog.recent_runs()[0].n_done == 40


def test_second_connection_sees_commits(catalog, request_factory):
    other = open_catalog(catalog.path)
    try:
        run_id = catalog.start_run(request_factory(), "m", "h")
        assert [run.id for run in other.recent_runs()] == [run_id]
        other.finish_run(run_id, "cancelled")
        assert catalog.get_run(run_id).status == "cancelled"
    finally:
        other.close()
