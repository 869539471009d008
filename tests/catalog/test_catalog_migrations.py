"""Schema migrations: a blank database gets the whole schema; reopening applies nothing."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading

import pytest

from steady.catalog import migrations, open_catalog
from steady.errors import CatalogError
from steady.params import ImageParams


def columns(conn, table):
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_blank_database_gets_the_schema(tmp_path):
    conn = sqlite3.connect(tmp_path / "blank.db", isolation_level=None)
    assert migrations.migrate(conn) == ["m001_initial", "m002_jobs", "m003_gallery", "m004_scores", "m005_job_strikes",
                                     "m006_unknown_params", "m007_import_groups", "m008_lineage",
                                     "m009_search", "m010_thumbs_ahead",
                                     "m011_gallery_covering"]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"migrations", "prompts", "runs", "images", "jobs", "image_features", "imports"} <= tables
    assert columns(conn, "prompts") == ["id", "text", "negative_prompt", "created_at"]
    assert columns(conn, "runs") == ["id", "prompt_id", "created_at", "finished_at", "status", "n_requested", "n_done",
                                     "model_name", "model_hash", "request_json", "variety", "stop_reason"]
    image_columns = set(columns(conn, "images"))
    for name in ("id", "run_id", "path", "file_name", "idx", "params_json", "seconds", "peak_rss_bytes",
                 "peak_vram_bytes", "created_at", "favourite", "rejected", "file_size"):
        assert name in image_columns
    for param in dataclasses.fields(ImageParams):
        # Kept in params_json only (init_hash: a column). The backend too: an image made before it
        # existed ran on torch, and no query filters by it.
        if param.name not in ("steady_version", "extra", "source", "hires", "backend"):
            assert param.name in image_columns, param.name
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert indexes == {"images_created", "images_run", "images_prompt", "images_model_hash", "runs_created", "runs_prompt",
                       "jobs_state", "images_content_hash", "images_model_name", "images_prompt_model", "runs_status", "images_init_image",
                       "images_live_newest", "images_live_adherence", "images_trash_newest", "images_no_colour"}
    rows = conn.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall()
    assert [r[0] for r in rows] == ["m001_initial", "m002_jobs", "m003_gallery", "m004_scores", "m005_job_strikes",
                                     "m006_unknown_params", "m007_import_groups", "m008_lineage",
                                     "m009_search", "m010_thumbs_ahead",
                                     "m011_gallery_covering"]
    assert all(r[1].endswith("+00:00") for r in rows)
    assert {"state", "plan_json", "attempts", "strikes"} <= set(columns(conn, "jobs"))
    assert {"source", "content_hash", "trash_path", "trashed_at"} <= image_columns | set(columns(conn, "images"))
    # The gallery's prompt search can use the index.
    plan = " ".join(str(row) for row in conn.execute("EXPLAIN QUERY PLAN SELECT id FROM images WHERE prompt LIKE 'a li%'"))
    assert "images_prompt" in plan


def test_reopening_applies_nothing(tmp_path):
    path = tmp_path / "c.db"
    open_catalog(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    before = conn.execute("SELECT name, applied_at FROM migrations").fetchall()
    assert migrations.migrate(conn) == []
    conn.close()
    open_catalog(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name, applied_at FROM migrations").fetchall() == before


def test_pragmas(catalog):
    with catalog.reading() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "c.db"
    open_catalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO migrations VALUES ('m999_from_the_future', '2030-01-01')")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogError, match="newer steady"):
        open_catalog(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="not usable"):
        open_catalog(path)


def test_default_path_honours_steady_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEADY_HOME", str(tmp_path / "new" / "home"))
    catalog = open_catalog()
    try:
        assert catalog.path == tmp_path / "new" / "home" / "catalog.db"
        assert catalog.path.exists()
    finally:
        catalog.close()


def test_concurrent_first_opens_migrate_once(tmp_path):
    path = tmp_path / "c.db"
    errors = []

    def opener():
        try:
            open_catalog(path).close()
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(migrations.MIGRATIONS)


def test_registered_migrations_are_the_ones_a_fresh_database_records(tmp_path):
    """The decorator registers each migration where it is written, in the order written, under
    the name old catalogs recorded (so an existing catalog is not migrated again)."""
    names = migrations.MIGRATIONS.names
    assert names[:4] == ["m001_initial", "m002_jobs", "m003_gallery", "m004_scores"]
    assert [migration.__name__ for migration in migrations.MIGRATIONS] == names
    for name in names:
        assert getattr(migrations, name) in list(migrations.MIGRATIONS)  # the decorator returns the function
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    assert migrations.migrate(conn) == names
    assert migrations.applied(conn) == names


def test_a_failing_migration_leaves_the_previous_version(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    first = migrations.Migrations()

    @first.register
    def m001_one(conn):
        conn.execute("CREATE TABLE one (id INTEGER PRIMARY KEY)")

    @first.register
    def m002_two(conn):
        conn.execute("CREATE TABLE two (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO one VALUES (1)")
        raise RuntimeError("halfway")

    with pytest.raises(RuntimeError, match="halfway"):
        first.migrate(conn)
    assert migrations.applied(conn) == ["m001_one"]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"migrations", "one"}
    assert conn.execute("SELECT COUNT(*) FROM one").fetchone()[0] == 0
    assert not conn.in_transaction

    fixed = migrations.Migrations()
    fixed.register(m001_one)

    @fixed.register
    def m002_two(conn):  # the fixed version of the one above
        conn.execute("CREATE TABLE two (id INTEGER PRIMARY KEY)")

    assert fixed.migrate(conn) == ["m002_two"]
    assert migrations.applied(conn) == ["m001_one", "m002_two"]
    # The first set, now older than the database, refuses it.
    older = migrations.Migrations()
    older.register(m001_one)
    with pytest.raises(CatalogError, match="newer steady.*m002_two"):
        older.migrate(conn, where="test db")


def test_register_checks_names_and_order():
    registry = migrations.Migrations()

    def m002_b(conn):
        pass

    def m001_a(conn):
        pass

    def create_things(conn):
        pass

    with pytest.raises(ValueError, match="mNNN_what"):
        registry.register(create_things)
    registry.register(m002_b)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(m002_b)
    with pytest.raises(ValueError, match="number it higher"):
        registry.register(m001_a)
    assert registry.names == ["m002_b"] and len(registry) == 1


def migrated_up_to(path, last: str) -> sqlite3.Connection:
    """A catalog at migration `last` (as an older steady left it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    older = migrations.Migrations()
    for migration in migrations.MIGRATIONS:
        older.register(migration)
        if migration.__name__ == last:
            break
    older.migrate(conn)
    return conn


def test_earlier_imports_invented_zeros_become_unknown(tmp_path):
    """m006: a plain PNG imported by an older steady (steps 0, CFG 0, seed 0 recorded) reads as
    unknown after the migration, in the columns and in params_json; a real seed 0 is kept."""
    import json

    conn = migrated_up_to(tmp_path / "c.db", "m005_job_strikes")
    conn.execute("INSERT INTO prompts (id, text, negative_prompt, created_at) VALUES (1, '', '', 't')")
    conn.execute("INSERT INTO runs (id, prompt_id, created_at, n_requested, request_json) VALUES (1, 1, 't', 3, '{}')")
    for i, (source, steps, cfg) in enumerate((("none", 0, 0.0), ("a1111", 0, 0.0), ("steady", 8, 5.0))):
        params = {"seed": 0, "steps": steps, "cfg_scale": cfg, "clip_skip": 1, "width": 8, "height": 8}
        conn.execute(
            "INSERT INTO images (run_id, path, file_name, idx, seed, prompt, negative_prompt, steps, cfg_scale, width,"
            " height, sampler, clip_skip, model_name, model_hash, model_arch, device, dtype, params_json, created_at,"
            " source) VALUES (1, ?, 'f', ?, 0, '', '', ?, ?, 8, 8, '', 1, '', '', '', '', '', ?, 't', ?)",
            (f"/p{i}", i, steps, cfg, json.dumps(params), source),
        )
    migrations.migrate(conn)
    got = {r[0]: r[1:] for r in conn.execute("SELECT source, seed, steps, cfg_scale, clip_skip, params_json FROM images")}
    assert got["none"][:4] == (None, None, None, None)
    assert json.loads(got["none"][4])["seed"] is None and json.loads(got["none"][4])["width"] == 8
    assert got["a1111"][:4] == (0, None, None, 1)
    assert got["steady"][:4] == (0, 8, 5.0, 1)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_earlier_imports_one_run_per_prompt_become_one_group(tmp_path):
    """m007: the runs an older import made (one per prompt) become one import group; the images
    keep their ids, the old runs and their prompts go, a run generated here stays."""
    conn = migrated_up_to(tmp_path / "c.db", "m006_unknown_params")
    for i, (text, status) in enumerate((("a cat", "imported"), ("a dog", "imported"), ("mine", "done")), start=1):
        conn.execute("INSERT INTO prompts (id, text, negative_prompt, created_at) VALUES (?, ?, '', 't')", (i, text))
        conn.execute("INSERT INTO runs (id, prompt_id, created_at, status, n_requested, n_done, request_json)"
                     f" VALUES (?, ?, '2026-0{i}', ?, 1, 1, '{{}}')", (i, i, status))
        conn.execute(
            "INSERT INTO images (id, run_id, path, file_name, idx, prompt, negative_prompt, width, height, sampler,"
            " model_name, model_hash, model_arch, device, dtype, params_json, created_at, source)"
            " VALUES (?, ?, ?, 'f', 0, ?, '', 8, 8, '', '', '', '', '', '', '{}', ?, ?)",
            (10 + i, i, f"/pics/{'sub/' if i == 2 else ''}{i}.png" if status == "imported" else "/out/3.png", text,
             f"2026-0{i}", "a1111" if status == "imported" else "steady"),
        )
    migrations.migrate(conn)
    [(group_id, run_id, folder, created)] = conn.execute("SELECT id, run_id, folder, created_at FROM imports").fetchall()
    assert (folder, created) == ("/pics", "2026-01")
    assert conn.execute("SELECT status, n_done FROM runs WHERE id = ?", (run_id,)).fetchone() == ("imported", 2)
    assert conn.execute("SELECT id, idx FROM images WHERE run_id = ? ORDER BY id", (run_id,)).fetchall() == [(11, 0), (12, 1)]
    assert {r[0] for r in conn.execute("SELECT id FROM runs")} == {3, run_id}
    assert {r[0] for r in conn.execute("SELECT text FROM prompts")} == {"mine", ""}
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
