"""reconcile(): each crash point between 'file written' and 'row committed', and speed."""

from __future__ import annotations

import json
import os
import time

from PIL import Image

from steady.catalog import reconcile


def old(path, seconds=3600):
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_crash_during_write_leaves_temp_file_that_is_removed(catalog, tmp_path):
    out = tmp_path / "outputs" / "2026-05-09"
    out.mkdir(parents=True)
    stale = out / ".00001-00-1234.png.deadbeef.tmp"
    stale.write_bytes(b"\x89PNG half")
    old(stale)
    fresh = out / ".00001-01-1235.png.0badc0de.tmp"  # maybe being written right now
    fresh.write_bytes(b"\x89PNG")
    mine = out / ".notes.tmp"  # not our naming: a user's file
    mine.write_text("keep me")
    old(mine)
    report = reconcile(catalog, tmp_path / "outputs")
    assert report.temp_files_removed == 1
    assert sorted(os.listdir(out)) == [".00001-01-1235.png.0badc0de.tmp", ".notes.tmp"]
    assert reconcile(catalog, tmp_path / "outputs", temp_min_age_s=0).temp_files_removed == 1
    assert os.listdir(out) == [".notes.tmp"]


def test_crash_after_file_before_row_records_under_its_run(catalog, tmp_path, params_factory, request_factory,
                                                          png_writer):
    out = tmp_path / "outputs"
    run_id = catalog.start_run(request_factory(n_images=2), "tiny-sd1", "0123456789")
    first = png_writer(out / f"{run_id:05d}-00-1234.png", params_factory(seed=1234))
    catalog.add_image(run_id, first, 0, params_factory(seed=1234), 1.0)
    # Crash: the second file is complete on disk, its row never committed; run still 'running'.
    png_writer(out / f"{run_id:05d}-01-1235.png", params_factory(seed=1235))
    report = reconcile(catalog, out, interrupt_running=True)
    assert (report.images_recorded, report.runs_created, report.runs_interrupted) == (1, 0, 1)
    run = catalog.get_run(run_id)
    assert (run.status, run.n_done) == ("interrupted", 2)
    images = catalog.images_of_run(run_id)
    assert [(i.index, i.seed) for i in images] == [(0, 1234), (1, 1235)]
    assert images[1].params == params_factory(seed=1235)
    again = reconcile(catalog, out)
    assert (again.images_recorded, again.rows_removed, again.files_seen) == (0, 0, 2)


def test_orphans_without_a_known_run_get_an_interrupted_run(catalog, tmp_path, params_factory, png_writer):
    out = tmp_path / "outputs"
    png_writer(out / "day" / "a.png", params_factory(seed=1))
    old(png_writer(out / "day" / "b.png", params_factory(seed=2)), 60)
    png_writer(out / "day" / "00077-00-3.png", params_factory(seed=3))  # run 77 does not exist
    png_writer(out / "other.png", params_factory(prompt="something else", seed=4))
    report = reconcile(catalog, out)
    assert (report.images_recorded, report.runs_created) == (4, 2)
    runs = {run.prompt: run for run in catalog.recent_runs()}
    lighthouse = runs["a lighthouse at dusk"]
    assert (lighthouse.status, lighthouse.n_done, lighthouse.n_requested) == ("interrupted", 3, 3)
    assert [i.seed for i in catalog.images_of_run(lighthouse.id)] == [2, 1, 3]  # oldest file first
    # A later orphan of the same prompt and model joins the same interrupted run.
    png_writer(out / "day" / "c.png", params_factory(seed=5))
    report = reconcile(catalog, out)
    assert (report.images_recorded, report.runs_created) == (1, 0)
    assert [i.index for i in catalog.images_of_run(lighthouse.id)] == [0, 1, 2, 3]


def test_pngs_without_our_chunk_are_left_alone(catalog, tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    Image.new("RGB", (4, 4)).save(out / "a1111.png")
    (out / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    report = reconcile(catalog, out)
    assert (report.foreign_pngs, report.images_recorded) == (2, 0)
    assert sorted(os.listdir(out)) == ["a1111.png", "broken.png"]
    assert catalog.recent_runs() == []


def test_rows_whose_file_is_gone_are_removed(catalog, tmp_path, params_factory, request_factory, png_writer):
    out = tmp_path / "outputs"
    elsewhere = tmp_path / "my-out-dir"
    run_id = catalog.start_run(request_factory(n_images=4), "m", "h")
    paths = [png_writer(out / f"{n}.png", params_factory(seed=n)) for n in range(2)]
    paths += [png_writer(elsewhere / f"{n}.png", params_factory(seed=n)) for n in range(2, 4)]
    for n, path in enumerate(paths):
        catalog.add_image(run_id, path, n, params_factory(seed=n), 1.0)
    paths[0].unlink()  # deleted by the user, inside outputs
    paths[2].unlink()  # deleted by the user, in their own folder
    report = reconcile(catalog, out)
    assert (report.rows_removed, report.rows_unreachable) == (2, 0)
    assert [i.seed for i in catalog.images_of_run(run_id)] == [1, 3]
    assert catalog.get_run(run_id).n_done == 2
    # A whole missing folder outside outputs may be an unplugged drive: the row stays.
    paths[3].unlink()
    elsewhere.rmdir()
    report = reconcile(catalog, out)
    assert (report.rows_removed, report.rows_unreachable) == (0, 1)
    assert [i.seed for i in catalog.images_of_run(run_id)] == [1, 3]


def test_missing_outputs_folder_removes_nothing(catalog, tmp_path, params_factory, request_factory, png_writer):
    out = tmp_path / "outputs"
    run_id = catalog.start_run(request_factory(n_images=1), "m", "h")
    path = png_writer(out / "a.png", params_factory())
    catalog.add_image(run_id, path, 0, params_factory(), 1.0)
    path.unlink()
    out.rmdir()
    report = reconcile(catalog, out)
    assert report.rows_removed == 0 and "does not exist" in report.problems[0]
    assert len(catalog.images_of_run(run_id)) == 1


def test_late_add_image_moves_the_row_to_its_real_run(catalog, tmp_path, params_factory, request_factory, png_writer):
    # Reconcile ran between the worker's write and the supervisor's add_image.
    out = tmp_path / "outputs"
    run_id = catalog.start_run(request_factory(n_images=1), "m", "h")
    path = png_writer(out / "x.png", params_factory())
    reconcile(catalog, out)
    (interrupted,) = [run for run in catalog.recent_runs() if run.id != run_id]
    catalog.add_image(run_id, path, 0, params_factory(), 2.5)
    assert [i.seconds for i in catalog.images_of_run(run_id)] == [2.5]
    assert catalog.get_run(interrupted.id).n_done == 0


def test_fast_for_many_files(catalog, tmp_path, request_factory, params_factory):
    # 5,000 recorded files in 50 folders: only a walk and one query, no PNG is opened.
    # (20,000 files take about 0.06-0.13 s on the 2-core dev machine; kept smaller to spare shared CI disks.)
    out = tmp_path / "outputs"
    run_id = catalog.start_run(request_factory(n_images=5_000), "m", "h")
    params_json = json.dumps(params_factory().to_dict())
    rows = []
    out.mkdir()
    root = str(out.resolve())
    for folder in range(50):
        day = os.path.join(root, f"day-{folder:03d}")
        os.mkdir(day)
        for n in range(100):
            path = os.path.join(day, f"{n:05d}.png")
            open(path, "wb").close()
            rows.append((run_id, path, os.path.basename(path), n))
    with catalog.transaction() as conn:
        conn.executemany(
            "INSERT INTO images (run_id, path, file_name, idx, seed, prompt, negative_prompt, steps, cfg_scale, width,"
            " height, sampler, clip_skip, model_name, model_hash, model_arch, device, dtype, params_json, created_at)"
            " VALUES (?, ?, ?, ?, 1, 'p', '', 20, 7, 64, 64, 'Euler a', 1, 'm', 'h', 'sd1', 'cpu', 'float32', ?, 'now')",
            [(*row, params_json) for row in rows],
        )
    started = time.perf_counter()
    report = reconcile(catalog, out)
    elapsed = time.perf_counter() - started
    assert (report.files_seen, report.images_recorded, report.rows_removed) == (5_000, 0, 0)
    assert elapsed < 5, elapsed  # about 0.02 s; generous for a loaded shared machine
