"""Import groups: each imported folder is one group (its folder, when it was imported, how many
images), shown in the gallery's filters; imported images are not prompt history.

    group = import_group(conn, "/home/me/a1111/outputs")     # inside a transaction: get or make
    groups = list_groups(catalog)                            # newest first, for the gallery's filter

A group is held by one run of status 'imported' (images.run_id stays a real run, so the run
filter, the trash and reconcile need nothing new) and one `imports` row naming its folder.
Importing the same folder again adds to its group. The prompt history (steady.catalog.queries:
recent_runs, runs_page, prompt_iterations) leaves 'imported' runs out: it shows what was
generated here.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from steady.catalog.db import Catalog, now_iso, prompt_id_for


@dataclass
class ImportGroup:
    id: int
    run_id: int
    folder: str
    created_at: str  # when the folder was first imported
    updated_at: str  # when an import last added to it
    count: int  # its images (trashed ones included)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def import_group(conn: sqlite3.Connection, folder: str) -> ImportGroup:
    """The group of `folder`, made (with its run) when it has none. Call inside a transaction."""
    found = _get(conn, "WHERE g.folder = ?", (folder,))
    if found is not None:
        return found
    now = now_iso()
    prompt_id = prompt_id_for(conn, "", "")
    run_id = conn.execute(
        "INSERT INTO runs (prompt_id, created_at, finished_at, status, n_requested, request_json)"
        " VALUES (?, ?, ?, 'imported', 0, ?) RETURNING id",
        (prompt_id, now, now, json.dumps({"import": folder})),
    ).fetchone()[0]
    conn.execute("INSERT INTO imports (run_id, folder, created_at, updated_at) VALUES (?, ?, ?, ?)",
                 (run_id, folder, now, now))  # fmt: skip
    group = _get(conn, "WHERE g.folder = ?", (folder,))
    assert group is not None
    return group


def touch_group(conn: sqlite3.Connection, group: ImportGroup) -> None:
    """After a batch: the group's count and its time. Call inside a transaction."""
    now = now_iso()
    conn.execute("UPDATE runs SET n_done = (SELECT COUNT(*) FROM images WHERE run_id = ?), finished_at = ?"
                 " WHERE id = ?", (group.run_id, now, group.run_id))  # fmt: skip
    conn.execute("UPDATE runs SET n_requested = n_done WHERE id = ?", (group.run_id,))
    conn.execute("UPDATE imports SET updated_at = ? WHERE id = ?", (now, group.id))


def list_groups(catalog: Catalog, limit: int = 200) -> list[ImportGroup]:
    with catalog.reading() as conn:
        rows = conn.execute(_SELECT + " ORDER BY g.updated_at DESC, g.id DESC LIMIT ?", (limit,)).fetchall()
    return [ImportGroup(*row) for row in rows]


def get_group(catalog: Catalog, group_id: int) -> ImportGroup | None:
    with catalog.reading() as conn:
        return _get(conn, "WHERE g.id = ?", (group_id,))


_SELECT = "SELECT g.id, g.run_id, g.folder, g.created_at, g.updated_at, r.n_done FROM imports g JOIN runs r ON r.id = g.run_id "


def _get(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> ImportGroup | None:
    row = conn.execute(_SELECT + where, args).fetchone()
    return None if row is None else ImportGroup(*row)
