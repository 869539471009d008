"""Thumbnails made ahead of the page: after an import, in a bounded background pass.

    made = make_thumbs_ahead(catalog, cfg.thumbs_dir, on_progress=lambda done, total: ...)
    record_colour(catalog, image_id, 0x336699)

The pass walks the images whose grid thumbnail (and dominant colour) is not made yet, newest
first (what the gallery shows first), a batch of ids at a time by key: memory is one batch
whatever the catalog holds, and one thread does it, so generation and the page keep the rest of
the machine. A file that cannot be read is marked (colour -1) so that the next pass does not
try it again; the page then shows its placeholder and asks for the thumbnail as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from steady.catalog.db import Catalog
from steady.errors import BadInput
from steady.images.thumbs import make_ahead

BATCH = 200
UNREADABLE = -1


def record_colour(catalog: Catalog, image_id: int, colour: int | None) -> None:
    with catalog.transaction() as conn:
        conn.execute("UPDATE images SET colour = ? WHERE id = ?", (UNREADABLE if colour is None else colour, image_id))


def pending_count(catalog: Catalog) -> int:
    with catalog.reading() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM images WHERE colour IS NULL").fetchone()[0])


def make_thumbs_ahead(catalog: Catalog, thumbs_dir: Path, on_progress: Callable[[int, int], None] | None = None,
                      stop: threading.Event | None = None, limit: int | None = None) -> int:  # fmt: skip
    """Make every missing grid thumbnail (the `limit` newest of them, when given), newest first;
    returns how many were made."""
    total = pending_count(catalog) if limit is None else min(limit, pending_count(catalog))
    done = made = 0
    last_key: tuple[str, int] | None = None
    while (stop is None or not stop.is_set()) and done < total:
        with catalog.reading() as conn:
            if last_key is None:
                rows = conn.execute("SELECT id, COALESCE(trash_path, path), created_at FROM images WHERE colour IS NULL"
                                    " ORDER BY created_at DESC, id DESC LIMIT ?", (min(BATCH, total),)).fetchall()  # fmt: skip
            else:
                rows = conn.execute("SELECT id, COALESCE(trash_path, path), created_at FROM images WHERE colour IS NULL"
                                    " AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?",
                                    (*last_key, min(BATCH, total - done))).fetchall()  # fmt: skip
        if not rows:
            break
        colours: list[tuple[int, int]] = []
        for image_id, path, _ in rows:
            try:
                colours.append((make_ahead(path, thumbs_dir, image_id), image_id))
                made += 1
            except (BadInput, OSError):
                colours.append((UNREADABLE, image_id))
        with catalog.transaction() as conn:
            conn.executemany("UPDATE images SET colour = ? WHERE id = ?", colours)
        done += len(rows)
        last_key = (rows[-1][2], rows[-1][0])
        if on_progress is not None:
            on_progress(done, max(total, done))
    return made
