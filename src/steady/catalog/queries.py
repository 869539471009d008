"""Read queries over the catalog, returning typed records (never rows or tuples).

Functions take an open sqlite3 connection; steady.catalog.db.Catalog calls them under its
lock. Times are ISO 8601 UTC strings, which sort the same as the moments they name.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from steady.errors import BadInput
from steady.params import ImageParams

RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted", "imported")


@dataclass
class RunSummary:
    """One run (one request) as history and the gallery list it."""

    id: int
    prompt_id: int
    prompt: str
    negative_prompt: str
    status: str
    created_at: str
    finished_at: str | None
    n_requested: int
    n_done: int
    model_name: str
    model_hash: str
    first_image_path: str | None
    variety: float | None = None  # share of its images that brought a new pattern
    stop_reason: str = ""  # why it stopped early (--until-saturated), "" otherwise
    from_image_id: int | None = None  # img2img / inpainting: the catalog image its images grew from
    from_hash: str | None = None  # and that image's sha256 (known even when the catalog lacks it)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ImageRecord:
    """One image row: where the file is, what made it, what it cost, what the user thinks."""

    id: int
    run_id: int
    path: str
    file_name: str
    index: int
    seed: int | None  # None: an imported file that does not say
    params: ImageParams
    seconds: float
    peak_rss_bytes: int
    peak_vram_bytes: int
    created_at: str
    favourite: bool
    rejected: bool
    file_size: int
    source: str = "steady"  # who made it: steady, or a1111/comfyui/invokeai/none when imported
    content_hash: str | None = None  # sha256 of the file (imported images; re-import skips a known hash)
    trash_path: str | None = None  # where the file is while it is in the trash (None: not trashed)
    trashed_at: str | None = None
    adherence: float | None = None  # how much better the model denoises it with its prompt (higher: closer)
    novelty: float | None = None  # distance to the nearest earlier image of the same prompt (None: first)
    init_hash: str | None = None  # img2img / inpainting: sha256 of the image it started from
    init_image_id: int | None = None  # and that image's row, when the catalog has it (lineage)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RUN_SELECT = """
    SELECT r.id, r.prompt_id, p.text, p.negative_prompt, r.status, r.created_at, r.finished_at,
           r.n_requested, r.n_done, r.model_name, r.model_hash,
           (SELECT i.path FROM images i WHERE i.run_id = r.id ORDER BY i.idx, i.id LIMIT 1), r.variety, r.stop_reason,
           (SELECT i.init_image_id FROM images i WHERE i.run_id = r.id AND i.init_hash IS NOT NULL
            ORDER BY i.idx, i.id LIMIT 1),
           (SELECT i.init_hash FROM images i WHERE i.run_id = r.id AND i.init_hash IS NOT NULL ORDER BY i.idx, i.id LIMIT 1)
    FROM runs r JOIN prompts p ON p.id = r.prompt_id
"""

# The prompt history is what was generated here: import groups (status 'imported') are not in it.
_HERE = "r.status != 'imported'"

_IMAGE_SELECT = """
    SELECT id, run_id, path, file_name, idx, seed, params_json, seconds, peak_rss_bytes, peak_vram_bytes,
           created_at, favourite, rejected, file_size, source, content_hash, trash_path, trashed_at,
           adherence, novelty, init_hash, init_image_id
    FROM images
"""


def contains_casefold(haystack: str | None, needle: str | None) -> bool:
    """SQL function steady_contains(): case-insensitive for all of Unicode, which LIKE is not."""
    if haystack is None or needle is None:
        return False
    return needle.casefold() in haystack.casefold()


def install_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("steady_contains", 2, contains_casefold, deterministic=True)


def recent_runs(conn: sqlite3.Connection, limit: int = 20) -> list[RunSummary]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadInput("limit", limit, "must be a whole number of at least 1")
    rows = conn.execute(_RUN_SELECT + f" WHERE {_HERE} ORDER BY r.created_at DESC, r.id DESC LIMIT ?", (limit,)).fetchall()
    return [_run(row) for row in rows]


def prompt_iterations(conn: sqlite3.Connection, text: str) -> list[RunSummary]:
    """Runs whose prompt contains `text` (any case), oldest first: how a prompt evolved."""
    if not isinstance(text, str):
        raise BadInput("prompt", text, "must be text")
    rows = conn.execute(
        _RUN_SELECT + f" WHERE {_HERE} AND steady_contains(p.text, ?) ORDER BY r.created_at, r.id", (text,)
    ).fetchall()
    return [_run(row) for row in rows]


def runs_page(conn: sqlite3.Connection, text: str = "", limit: int = 20, offset: int = 0) -> list[RunSummary]:
    """Newest first, `limit` runs after the first `offset`: all runs, or those whose prompt
    contains `text` (any case). A page at a time, so no request makes the server hold them all."""
    for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
            raise BadInput(name, value, f"must be a whole number from {low} to 2**63 - 1")
    if not isinstance(text, str):
        raise BadInput("prompt", text, "must be text")
    where, args = (f" WHERE {_HERE} AND steady_contains(p.text, ?)", (text,)) if text else (f" WHERE {_HERE}", ())
    rows = conn.execute(_RUN_SELECT + where + " ORDER BY r.created_at DESC, r.id DESC LIMIT ? OFFSET ?",
                        (*args, limit, offset)).fetchall()  # fmt: skip
    return [_run(row) for row in rows]


def get_run(conn: sqlite3.Connection, run_id: int) -> RunSummary | None:
    row = conn.execute(_RUN_SELECT + " WHERE r.id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def images_of_run(conn: sqlite3.Connection, run_id: int, limit: int = -1, offset: int = 0) -> list[ImageRecord]:
    """The run's images in index order; ``limit`` of them after ``offset`` (-1: all)."""
    rows = conn.execute(_IMAGE_SELECT + " WHERE run_id = ? ORDER BY idx, id LIMIT ? OFFSET ?",
                        (run_id, limit, offset)).fetchall()  # fmt: skip
    return [_image(row) for row in rows]


def get_image(conn: sqlite3.Connection, image_id: int) -> ImageRecord | None:
    row = conn.execute(_IMAGE_SELECT + " WHERE id = ?", (image_id,)).fetchone()
    return None if row is None else _image(row)


def image_paths(conn: sqlite3.Connection) -> dict[str, int]:
    """Where each recorded file is -> image id, in one query (reconcile compares it with the disk):
    the row's path, or its trash_path while it is in the trash."""
    return {trash or path: image_id for image_id, path, trash in conn.execute("SELECT id, path, trash_path FROM images")}


def _run(row: sqlite3.Row | tuple[Any, ...]) -> RunSummary:
    return RunSummary(
        id=row[0], prompt_id=row[1], prompt=row[2], negative_prompt=row[3], status=row[4], created_at=row[5],
        finished_at=row[6], n_requested=row[7], n_done=row[8], model_name=row[9], model_hash=row[10],
        first_image_path=row[11], variety=row[12], stop_reason=row[13], from_image_id=row[14], from_hash=row[15],
    )


def _image(row: sqlite3.Row | tuple[Any, ...]) -> ImageRecord:
    return ImageRecord(
        id=row[0], run_id=row[1], path=row[2], file_name=row[3], index=row[4], seed=row[5],
        params=ImageParams.from_dict(json.loads(row[6])), seconds=row[7], peak_rss_bytes=row[8],
        peak_vram_bytes=row[9], created_at=row[10], favourite=bool(row[11]), rejected=bool(row[12]),
        file_size=row[13], source=row[14], content_hash=row[15], trash_path=row[16], trashed_at=row[17],
        adherence=row[18], novelty=row[19], init_hash=row[20], init_image_id=row[21],
    )
