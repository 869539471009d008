"""The catalog: one SQLite file recording every prompt, run and image.

    from steady.catalog import open_catalog
    with open_catalog() as catalog:            # STEADY_HOME/catalog.db, created and migrated
        run_id = catalog.start_run(request, "v1-5-pruned-emaonly", "6ce0161689")
        catalog.add_image(run_id, path, 0, params, seconds=3.2)
        catalog.finish_run(run_id, "done")

Order of truth: the PNG is written first (atomically, with its parameters inside), then its
row is committed. After a crash, steady.catalog.reconcile brings the two back into agreement.

Threads and processes: a Catalog holds one sqlite3 connection behind a lock, so a Catalog may
be shared by threads (calls run one at a time, and every write is one transaction). Another
process opens its own Catalog: WAL mode lets readers read while one writer writes, and
busy_timeout makes a second writer wait for the first instead of failing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from steady.catalog import migrations, queries
from steady.catalog.queries import RUN_STATUSES, ImageRecord, RunSummary
from steady.errors import BadInput, CatalogError
from steady.params import GenerationRequest, ImageParams

BUSY_TIMEOUT_MS = 10_000


def now_iso() -> str:
    """The catalog's timestamp format: ISO 8601, UTC, microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def open_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Open (creating the folder and migrating as needed) the catalog at `path`,
    by default settings().db_path under STEADY_HOME."""
    if path is None:
        from steady.config import settings

        path = settings().db_path
    db_path = Path(path)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(f"cannot create the catalog folder {db_path.parent}: {exc.strerror or exc}") from exc
    try:
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise CatalogError(f"cannot open the catalog {db_path}: {exc}") from exc
    try:
        # WAL: readers never block the writer. synchronous=NORMAL is safe with WAL (no
        # corruption on power loss; the last commits may be lost, and reconcile re-records
        # those images from their files).
        _set_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        queries.install_functions(conn)
        migrations.migrate(conn, where=f"catalog {db_path}")
    except sqlite3.Error as exc:
        conn.close()
        raise CatalogError(f"the catalog {db_path} is not usable: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return Catalog(conn, db_path)


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting for a concurrent opener. Changing the journal mode of a fresh
    database needs an exclusive lock, and SQLite answers "database is locked" at once, without
    the busy handler, while another connection is switching it; so retry until the timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Catalog:
    """Typed access to the catalog. Use open_catalog() to get one; close() when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- transactions (also used by steady.catalog.reconcile) -------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the lock. BEGIN IMMEDIATE takes the write lock up
        front, so two processes never deadlock upgrading a read to a write."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise CatalogError(f"the catalog {self.path} is busy or unusable: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise CatalogError(f"cannot write the catalog {self.path}: {exc}") from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # A failed COMMIT may already have ended the transaction; the original error matters.
        with suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise CatalogError(f"cannot read the catalog {self.path}: {exc}") from exc

    # -- writes ------------------------------------------------------------------------------

    def start_run(self, request: GenerationRequest, model_name: str, model_hash: str) -> int:
        """Record a new run (status 'running') for `request`; returns its id."""
        with self.transaction() as conn:
            return insert_run(conn, request, model_name, model_hash, "running")

    def add_image(
        self,
        run_id: int,
        path: str | os.PathLike[str],
        index: int,
        params: ImageParams,
        seconds: float,
        peak_rss_bytes: int = 0,
        peak_vram_bytes: int = 0,
    ) -> int:
        """Record an image whose file is already written; returns the image id.

        Recording the same path again updates its row (moving it to `run_id` if reconcile had
        filed it under an 'interrupted' run in the meantime); favourite/rejected are kept.
        """
        file_path = Path(path).resolve()
        try:
            file_size = file_path.stat().st_size
            # The file's hash, as imported rows carry: importing a copy of it later is a duplicate.
            content_hash = file_sha256(file_path)
        except OSError as exc:
            raise BadInput(
                "path", str(path), f"cannot be recorded: the file must be written first ({exc.strerror})"
            ) from exc
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise BadInput("run_id", run_id, "no such run in the catalog")
            return insert_image(
                conn, run_id, str(file_path), index, params, seconds, peak_rss_bytes, peak_vram_bytes, file_size,
                now_iso(), content_hash,
            )

    def finish_run(self, run_id: int, status: str) -> None:
        """Set the run's final status and finish time."""
        if status not in RUN_STATUSES:
            raise BadInput("status", status, "must be one of " + ", ".join(RUN_STATUSES))
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, now_iso(), run_id)
            )
            if cursor.rowcount == 0:
                raise BadInput("run_id", run_id, "no such run in the catalog")

    # -- reads -------------------------------------------------------------------------------

    def recent_runs(self, limit: int = 20) -> list[RunSummary]:
        """The newest runs first, with prompt text, image count, model and times."""
        with self.reading() as conn:
            return queries.recent_runs(conn, limit)

    def prompt_iterations(self, text: str) -> list[RunSummary]:
        """Runs whose prompt contains `text` (any case), oldest first."""
        with self.reading() as conn:
            return queries.prompt_iterations(conn, text)

    def runs_page(self, text: str = "", limit: int = 20, offset: int = 0) -> list[RunSummary]:
        """Newest first: `limit` runs (whose prompt contains `text`, when given) after `offset`."""
        with self.reading() as conn:
            return queries.runs_page(conn, text, limit, offset)

    def get_run(self, run_id: int) -> RunSummary | None:
        with self.reading() as conn:
            return queries.get_run(conn, run_id)

    def images_of_run(self, run_id: int, limit: int = -1, offset: int = 0) -> list[ImageRecord]:
        """The run's images in index order (``limit`` after ``offset``: a page; -1: all)."""
        with self.reading() as conn:
            return queries.images_of_run(conn, run_id, limit, offset)

    def get_image(self, image_id: int) -> ImageRecord | None:
        with self.reading() as conn:
            return queries.get_image(conn, image_id)


# -- shared by Catalog and reconcile; call inside a transaction ----------------------------


def insert_run(conn: sqlite3.Connection, request: GenerationRequest, model_name: str, model_hash: str,
               status: str) -> int:
    prompt_id = prompt_id_for(conn, request.prompt, request.negative_prompt)
    row = conn.execute(
        "INSERT INTO runs (prompt_id, created_at, status, n_requested, model_name, model_hash, request_json)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (prompt_id, now_iso(), status, request.n_images, model_name, model_hash, json.dumps(request.to_dict())),
    ).fetchone()
    return int(row[0])


def prompt_id_for(conn: sqlite3.Connection, text: str, negative_prompt: str) -> int:
    """Get or create the prompts row for this (prompt, negative prompt) pair."""
    conn.execute(
        "INSERT INTO prompts (text, negative_prompt, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (text, negative_prompt) DO NOTHING",
        (text, negative_prompt, now_iso()),
    )
    row = conn.execute(
        "SELECT id FROM prompts WHERE text = ? AND negative_prompt = ?", (text, negative_prompt)
    ).fetchone()
    return int(row[0])


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces (bounded memory for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def insert_image(
    conn: sqlite3.Connection,
    run_id: int,
    path: str,
    index: int,
    params: ImageParams,
    seconds: float,
    peak_rss_bytes: int,
    peak_vram_bytes: int,
    file_size: int,
    created_at: str,
    content_hash: str | None = None,
    recount: bool = True,
    source: str = "steady",
) -> int:
    """Insert or update the row for `path` and keep the runs' n_done equal to their row count
    (`recount=False`: the caller recounts once per batch, as an import does)."""
    before = conn.execute("SELECT run_id FROM images WHERE path = ?", (path,)).fetchone()
    values = {
        "run_id": run_id, "path": path, "file_name": os.path.basename(path), "idx": index, "seed": params.seed,
        "prompt": params.prompt, "negative_prompt": params.negative_prompt, "steps": params.steps,
        "cfg_scale": None if params.cfg_scale is None else float(params.cfg_scale), "width": params.width, "height": params.height,
        "sampler": params.sampler, "clip_skip": params.clip_skip, "model_name": params.model_name,
        "model_hash": params.model_hash, "model_arch": params.model_arch, "device": params.device,
        "dtype": params.dtype, "params_json": _params_json(params), "seconds": float(seconds),
        "peak_rss_bytes": int(peak_rss_bytes), "peak_vram_bytes": int(peak_vram_bytes), "created_at": created_at,
        "file_size": int(file_size), "content_hash": content_hash, "source": source, **_lineage(conn, params, path),
    }
    columns = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    updates = ", ".join(f"{name} = excluded.{name}" for name in values if name not in ("path", "created_at", "content_hash"))
    updates += ", content_hash = COALESCE(excluded.content_hash, content_hash)"
    row = conn.execute(
        f"INSERT INTO images ({columns}) VALUES ({marks}) ON CONFLICT (path) DO UPDATE SET {updates} RETURNING id",
        values,
    ).fetchone()
    touched = {run_id} if before is None else {run_id, before[0]}
    if recount:
        recount_runs(conn, touched)
    return int(row[0])


def _lineage(conn: sqlite3.Connection, params: ImageParams, path: str) -> dict[str, Any]:
    """The image it grew from: the init image's sha256, and its row (the one the request named,
    else the oldest image with that file hash, not this one)."""
    source, post = params.source, params.extra.get("postprocess")
    if post and post.get("source_hash"):  # an upscale (steady.jobs.upscale) grew from the image it enlarged
        image_hash, image_id = post["source_hash"], post.get("source_image_id")
    elif source is not None:
        image_hash, image_id = source.image_hash, source.image_id
    else:
        return {"init_hash": None, "init_image_id": None}
    if image_id is None or conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
        row = conn.execute("SELECT id FROM images WHERE content_hash = ? AND path != ? ORDER BY id LIMIT 1",
                           (image_hash, path)).fetchone()  # fmt: skip
        image_id = int(row[0]) if row else None
    return {"init_hash": image_hash, "init_image_id": image_id}


def _params_json(params: ImageParams) -> str:
    """params_json: the same text as json.dumps(params.to_dict()), without asdict's deep copy (its
    fields are plain values and the `extra` dict, which json.dumps walks itself): an import records
    thousands a second."""
    return json.dumps({f.name: getattr(params, f.name) for f in dataclasses.fields(params)}, sort_keys=True,
                      default=_nested)  # fmt: skip


def _nested(value: Any) -> Any:
    """The dataclasses an image's parameters hold (Source, Hires: img2img, hires fix) as their dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def recount_runs(conn: sqlite3.Connection, run_ids: set[int]) -> None:
    for run_id in run_ids:
        conn.execute(
            "UPDATE runs SET n_done = (SELECT COUNT(*) FROM images WHERE run_id = ?) WHERE id = ?", (run_id, run_id)
        )
