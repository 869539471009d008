"""The catalog schema as append-only migrations.

Each migration is a function `mNNN_what(conn)` registered where it is written, by the
`@MIGRATIONS.register` decorator above it (as simonw/llm does); registration order is the order
they run in. Its name is recorded in the `migrations` table with the time it was applied, and
it runs in its own transaction, so a crash halfway leaves the schema at the previous step. A
database that has a migration this code does not know was written by a newer steady and is
refused. Never edit, rename or reorder a migration that has shipped (its name is what existing
databases record): add `m005_...` at the bottom with the decorator. A test migrates a blank
database and checks the resulting schema.

MIGRATIONS is only appended to, by the decorators, while this module is imported; nothing
changes it afterwards.

Design notes for later migrations: runs.status has no CHECK constraint (SQLite cannot alter
one without rebuilding the table), so a jobs table may add states freely; thumbnails and scores
belong in their own tables keyed by images.id.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from steady.errors import CatalogError

Migration = Callable[[sqlite3.Connection], None]

_NAME = re.compile(r"m(\d{3})_\w+")


def applied(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations this database has, in the order they were applied."""
    rows = conn.execute("SELECT name FROM migrations ORDER BY applied_at, rowid").fetchall()
    return [row[0] for row in rows]


class Migrations:
    """An ordered set of migrations, filled by its `register` decorator.

    Names must look like `mNNN_what` with NNN rising in registration order, and be unique:
    the name is what a database records, so a typo or a shuffle fails at import, not in a
    user's catalog.
    """

    def __init__(self) -> None:
        self._migrations: list[Migration] = []

    def register(self, migration: Migration) -> Migration:
        """Decorator: append `migration` (run after every one registered before it)."""
        name = migration.__name__
        match = _NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"migration {name!r} is not named mNNN_what")
        if self._migrations:
            last = self._migrations[-1].__name__
            if name in self.names:
                raise ValueError(f"migration {name!r} is registered twice")
            if int(match.group(1)) <= int(last[1:4]):
                raise ValueError(f"migration {name!r} is registered after {last!r}; number it higher")
        self._migrations.append(migration)
        return migration

    @property
    def names(self) -> list[str]:
        """The registered migrations' names, in the order they run."""
        return [migration.__name__ for migration in self._migrations]

    def __iter__(self) -> Iterator[Migration]:
        return iter(tuple(self._migrations))

    def __len__(self) -> int:
        return len(self._migrations)

    def migrate(self, conn: sqlite3.Connection, where: str = "catalog") -> list[str]:
        """Bring the database up to date; returns the names applied now ([] when it already was).

        `conn` must be in autocommit mode (isolation_level=None): each migration opens its own
        BEGIN IMMEDIATE transaction, which also makes two processes opening a fresh catalog at
        once take turns instead of both creating tables. A migration that raises is rolled
        back, leaving the database at the one before it, and the error propagates.
        """
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        ours = self.names
        unknown = [name for name in applied(conn) if name not in ours]
        if unknown:
            raise CatalogError(
                f"{where} was written by a newer steady (it has migration {unknown[0]}); upgrade steady to open it"
            )
        done_now: list[str] = []
        for migration in self:
            name = migration.__name__
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Checked inside the transaction: another process may have just applied it.
                if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone() is None:
                    migration(conn)
                    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
                    conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, now))
                    done_now.append(name)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return done_now


# The catalog's migrations, in the order they run. Append only, by decorating below.
MIGRATIONS = Migrations()

_M001 = (
    """
    CREATE TABLE prompts (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        negative_prompt TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        UNIQUE (text, negative_prompt)
    )
    """,
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        prompt_id INTEGER NOT NULL REFERENCES prompts(id),
        created_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        n_requested INTEGER NOT NULL,
        n_done INTEGER NOT NULL DEFAULT 0,
        model_name TEXT NOT NULL DEFAULT '',
        model_hash TEXT NOT NULL DEFAULT '',
        request_json TEXT NOT NULL
    )
    """,
    # Every ImageParams field gets a column so that the gallery can filter and sort in SQL;
    # params_json keeps the whole object (extra included) for exact reproduction.
    # prompt is NOCASE so that `prompt LIKE 'abc%'` can use its index.
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        path TEXT NOT NULL UNIQUE,
        file_name TEXT NOT NULL,
        idx INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        prompt TEXT NOT NULL COLLATE NOCASE,
        negative_prompt TEXT NOT NULL,
        steps INTEGER NOT NULL,
        cfg_scale REAL NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        sampler TEXT NOT NULL,
        clip_skip INTEGER NOT NULL,
        model_name TEXT NOT NULL,
        model_hash TEXT NOT NULL,
        model_arch TEXT NOT NULL,
        device TEXT NOT NULL,
        dtype TEXT NOT NULL,
        params_json TEXT NOT NULL,
        seconds REAL NOT NULL DEFAULT 0,
        peak_rss_bytes INTEGER NOT NULL DEFAULT 0,
        peak_vram_bytes INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        favourite INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        file_size INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX images_created ON images (created_at DESC, id DESC)",
    "CREATE INDEX images_run ON images (run_id, idx)",
    "CREATE INDEX images_prompt ON images (prompt)",
    "CREATE INDEX images_model_hash ON images (model_hash)",
    "CREATE INDEX runs_created ON runs (created_at DESC, id DESC)",
    "CREATE INDEX runs_prompt ON runs (prompt_id)",
)


@MIGRATIONS.register
def m001_initial(conn: sqlite3.Connection) -> None:
    """Prompts, runs and images, with the gallery's indexes."""
    for statement in _M001:
        conn.execute(statement)


@MIGRATIONS.register
def m002_jobs(conn: sqlite3.Connection) -> None:
    """Durable generation jobs: one per run, with the plan it was checked against, so a job that
    was running when its worker (or the whole program) died knows what it has left to make."""
    conn.execute(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id),
            state TEXT NOT NULL DEFAULT 'queued',
            base_seed INTEGER NOT NULL,
            n_images INTEGER NOT NULL,
            model_path TEXT NOT NULL,
            out_dir TEXT NOT NULL,
            params_json TEXT NOT NULL,
            plan_json TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            recycles INTEGER NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT '',
            owner_pid INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX jobs_state ON jobs (state, id)")


@MIGRATIONS.register
def m003_gallery(conn: sqlite3.Connection) -> None:
    """What the gallery and `steady import` need: where an image came from, its content hash
    (re-import is idempotent), and the trash (a trashed image's file lives at trash_path)."""
    conn.execute("ALTER TABLE images ADD COLUMN source TEXT NOT NULL DEFAULT 'steady'")
    conn.execute("ALTER TABLE images ADD COLUMN content_hash TEXT")
    conn.execute("ALTER TABLE images ADD COLUMN trash_path TEXT")
    conn.execute("ALTER TABLE images ADD COLUMN trashed_at TEXT")
    conn.execute("CREATE INDEX images_content_hash ON images (content_hash)")
    conn.execute("CREATE INDEX images_model_name ON images (model_name)")


@MIGRATIONS.register
def m004_scores(conn: sqlite3.Connection) -> None:
    """Iterate smarter: each image's prompt adherence and novelty, a small feature vector per image
    (novelty is its distance to earlier images of the same prompt), each run's variety and why it
    stopped, a job's stopping rule (--until-saturated) and its variants (wildcards, X/Y grid)."""
    conn.execute("ALTER TABLE images ADD COLUMN adherence REAL")
    conn.execute("ALTER TABLE images ADD COLUMN novelty REAL")
    conn.execute(
        """
        CREATE TABLE image_features (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """
    )
    conn.execute("ALTER TABLE runs ADD COLUMN variety REAL")
    conn.execute("ALTER TABLE runs ADD COLUMN stop_reason TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE jobs ADD COLUMN stop_rule_json TEXT")
    conn.execute("ALTER TABLE jobs ADD COLUMN variants_json TEXT")  # per-image prompts/settings, grid axes
    conn.execute("CREATE INDEX images_prompt_model ON images (prompt, negative_prompt, model_hash)")


@MIGRATIONS.register
def m005_job_strikes(conn: sqlite3.Connection) -> None:
    """How many tries of a job's next image ended with its worker or the program dead (cleared when
    the worker answers), so a job whose input kills its worker ends failed instead of being
    retried at every restart (steady.jobs.queue.MAX_TRIES_PER_IMAGE)."""
    conn.execute("ALTER TABLE jobs ADD COLUMN strikes INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS.register
def m006_unknown_params(conn: sqlite3.Connection) -> None:
    """What an imported PNG does not say is unknown (NULL), not 0: seed, steps, CFG and clip skip
    become nullable (renamed, re-added, copied, the old column dropped: SQLite cannot relax NOT
    NULL in place), and earlier imports' invented values are cleared in the columns and in
    params_json: every number of a PNG without metadata (source 'none'), and steps or CFG 0
    elsewhere (no tool makes an image with either)."""
    for name, kind in (("seed", "INTEGER"), ("steps", "INTEGER"), ("cfg_scale", "REAL"), ("clip_skip", "INTEGER")):
        conn.execute(f"ALTER TABLE images RENAME COLUMN {name} TO {name}_old")
        conn.execute(f"ALTER TABLE images ADD COLUMN {name} {kind}")
        conn.execute(f"UPDATE images SET {name} = {name}_old")
        conn.execute(f"ALTER TABLE images DROP COLUMN {name}_old")
    unknown = {"seed": "source = 'none'", "steps": "source = 'none' OR (source != 'steady' AND steps = 0)",
               "cfg_scale": "source = 'none' OR (source != 'steady' AND cfg_scale = 0)",
               "clip_skip": "source = 'none'"}
    for name, where in unknown.items():
        conn.execute(f"UPDATE images SET {name} = NULL, params_json = json_set(params_json, '$.{name}', json('null'))"
                     f" WHERE {where}")


@MIGRATIONS.register
def m007_import_groups(conn: sqlite3.Connection) -> None:
    """An import is a group (steady.catalog.groups): one `imports` row per folder and one run of
    status 'imported' holding its images. Earlier imports' runs (one per prompt) become one group."""
    conn.execute(
        """
        CREATE TABLE imports (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id),
            folder TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX runs_status ON runs (status)")
    regroup_imported_runs(conn)


def regroup_imported_runs(conn: sqlite3.Connection) -> None:
    """m007's step: the one-run-per-prompt runs of earlier imports become one group, named by the
    folder all their images share, dated by the oldest of them; the old runs and the prompts no
    run uses any more are removed. Images keep their rows (ids, flags, scores)."""
    import json
    import os

    old = [row[0] for row in conn.execute("SELECT id FROM runs WHERE status = 'imported'")]
    if not old:
        return
    conn.execute("CREATE TEMP TABLE old_imported (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO old_imported (id) VALUES (?)", [(run_id,) for run_id in old])
    inside = "run_id IN (SELECT id FROM old_imported)"
    folders = {os.path.dirname(row[0]) for row in conn.execute(f"SELECT path FROM images WHERE {inside}")}
    folder = os.path.commonpath(sorted(folders)) if folders else "(earlier imports)"
    first, last = conn.execute("SELECT MIN(created_at), MAX(COALESCE(finished_at, created_at)) FROM runs"
                               " WHERE id IN (SELECT id FROM old_imported)").fetchone()  # fmt: skip
    conn.execute("INSERT INTO prompts (text, negative_prompt, created_at) VALUES ('', '', ?)"
                 " ON CONFLICT (text, negative_prompt) DO NOTHING", (first,))  # fmt: skip
    prompt_id = conn.execute("SELECT id FROM prompts WHERE text = '' AND negative_prompt = ''").fetchone()[0]
    run_id = conn.execute(
        "INSERT INTO runs (prompt_id, created_at, finished_at, status, n_requested, request_json)"
        " VALUES (?, ?, ?, 'imported', 0, ?) RETURNING id", (prompt_id, first, last, json.dumps({"import": folder})),
    ).fetchone()[0]
    conn.execute("INSERT INTO imports (run_id, folder, created_at, updated_at) VALUES (?, ?, ?, ?)",
                 (run_id, folder, first, last))  # fmt: skip
    conn.execute(
        f"UPDATE images SET run_id = ?, idx = sub.n FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) - 1 AS n"
        f" FROM images WHERE {inside}) AS sub WHERE images.id = sub.id", (run_id,),
    )
    conn.execute("DELETE FROM runs WHERE id IN (SELECT id FROM old_imported)")
    conn.execute("DELETE FROM prompts WHERE id NOT IN (SELECT prompt_id FROM runs)")
    conn.execute("UPDATE runs SET n_done = (SELECT COUNT(*) FROM images WHERE run_id = ?) WHERE id = ?", (run_id, run_id))
    conn.execute("UPDATE runs SET n_requested = n_done WHERE id = ?", (run_id,))
    conn.execute("DROP TABLE old_imported")


@MIGRATIONS.register
def m008_lineage(conn: sqlite3.Connection) -> None:
    """Which image an image grew from (img2img, inpainting): the sha256 of the image it started
    from, and that image's row when the catalog has it ("from image #123")."""
    conn.execute("ALTER TABLE images ADD COLUMN init_hash TEXT")
    conn.execute("ALTER TABLE images ADD COLUMN init_image_id INTEGER")
    conn.execute("CREATE INDEX images_init_image ON images (init_image_id)")


@MIGRATIONS.register
def m009_search(conn: sqlite3.Connection) -> None:
    """The gallery at 100,000 images: full-text search over prompt, negative prompt and model
    name (FTS5, external content, kept in step by triggers; steady.catalog.search), and indexes
    for keyset pages of each order over the images not in the trash (steady.catalog.pages)."""
    conn.execute(
        "CREATE VIRTUAL TABLE images_fts USING fts5(prompt, negative_prompt, model_name, content='images',"
        " content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3')"
    )
    conn.execute("INSERT INTO images_fts (images_fts) VALUES ('rebuild')")
    new = "new.id, new.prompt, new.negative_prompt, new.model_name"
    old = "'delete', old.id, old.prompt, old.negative_prompt, old.model_name"
    into = "INSERT INTO images_fts (images_fts, rowid, prompt, negative_prompt, model_name)"
    conn.execute(f"CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN"
                 f" INSERT INTO images_fts (rowid, prompt, negative_prompt, model_name) VALUES ({new}); END")
    conn.execute(f"CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN {into} VALUES ({old}); END")
    conn.execute(f"CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative_prompt, model_name ON images BEGIN"
                 f" {into} VALUES ({old}); INSERT INTO images_fts (rowid, prompt, negative_prompt, model_name)"
                 f" VALUES ({new}); END")
    conn.execute("CREATE INDEX images_live_newest ON images (created_at DESC, id DESC) WHERE trash_path IS NULL")
    conn.execute("CREATE INDEX images_live_adherence ON images (adherence IS NOT NULL DESC, COALESCE(adherence, 0) DESC,"
                 " created_at DESC, id DESC) WHERE trash_path IS NULL")
    conn.execute("CREATE INDEX images_trash_newest ON images (created_at DESC, id DESC) WHERE trash_path IS NOT NULL")


@MIGRATIONS.register
def m010_thumbs_ahead(conn: sqlite3.Connection) -> None:
    """Each image's dominant colour (0xRRGGBB; -1: its file could not be read), set when its grid
    thumbnail is made ahead (steady.catalog.ahead); NULL until then, which the pass looks for."""
    conn.execute("ALTER TABLE images ADD COLUMN colour INTEGER")
    conn.execute("CREATE INDEX images_no_colour ON images (created_at DESC, id DESC) WHERE colour IS NULL")


@MIGRATIONS.register
def m011_gallery_covering(conn: sqlite3.Connection) -> None:
    """The newest-first index of the live images also holds the columns the gallery's filters
    test (favourite, rejected, run, source, model), so a page's walk and a filter's count read the
    index alone, not the rows."""
    conn.execute("DROP INDEX images_live_newest")
    conn.execute("CREATE INDEX images_live_newest ON images (created_at DESC, id DESC, favourite, rejected, run_id,"
                 " source, model_name, model_hash) WHERE trash_path IS NULL")


def migrate(conn: sqlite3.Connection, where: str = "catalog") -> list[str]:
    """Bring the catalog database up to date with MIGRATIONS (see Migrations.migrate)."""
    return MIGRATIONS.migrate(conn, where)
