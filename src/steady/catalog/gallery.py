"""What the gallery asks of the catalog: filtered pages, flags, the trash, a prompt's history.

    page = gallery_page(catalog, GalleryFilter(text="circle", favourite=True), offset=0, limit=60)
    set_flags(catalog, image_id, favourite=True)
    trash_image(catalog, image_id, settings().home / "trash")   # restorable: restore_image(...)

Pages are addressed by position (the page's virtual grid jumps to any row) or by the key of the
row before (`after`), and read by key (steady.catalog.pages: no OFFSET scan, whatever the
position); the prompt text is an FTS5 search (steady.catalog.search). A page carries only the
columns a thumbnail needs.

The trash is crash-safe in the usual order: the row is changed first (trash_path set or
cleared), the file is moved second (os.replace, atomic on one file system), and
steady.catalog.reconcile finishes a move that a crash interrupted, so the row always says
where the file is.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from steady.catalog import pages
from steady.catalog.db import Catalog, now_iso, recount_runs
from steady.catalog.search import parse, search_clause
from steady.errors import BadInput

MAX_PAGE = 500
SORTS = pages.ORDERS


@dataclass
class GalleryFilter:
    text: str = ""  # a prompt search (steady.catalog.search: words, "phrases", prefix*, -not, neg:, model:)
    model: str = ""  # model name or hash, exact
    since: str = ""  # ISO date or time: created at or after
    until: str = ""  # ISO date or time: created before (a date means the end of that day)
    favourite: bool = False
    run_id: int | None = None
    hide_rejected: bool = False
    trash: bool = False  # the trash instead of the gallery
    sort: str = "newest"  # or "adherence": best first (a run sorted by how well it follows its prompt)
    import_id: int | None = None  # one import group (steady.catalog.groups)
    here: bool = False  # only images generated here (not imported)

    def check(self) -> GalleryFilter:
        if self.sort not in SORTS:
            raise BadInput("sort", self.sort, "must be one of " + ", ".join(SORTS))
        for name in ("since", "until"):
            value = getattr(self, name)
            if value:
                try:
                    datetime.fromisoformat(value)
                except ValueError as exc:
                    raise BadInput(name, value, "must be an ISO date like 2026-11-25") from exc
        return self

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["trash_path IS NOT NULL" if self.trash else "trash_path IS NULL"]
        args: list[Any] = []
        if self.text:
            clause, found = search_clause(self.text)
            if clause:
                clauses.append(clause)
                args += found
        if self.model:
            # The unary + keeps SQLite walking the order's index (a page reads ~WINDOW rows) rather
            # than reading every row of the model through its own index and sorting them.
            clauses.append("(+model_name = ? OR +model_hash = ?)")
            args += [self.model, self.model]
        if self.since:
            clauses.append("created_at >= ?")
            args.append(self.since)
        if self.until:
            clauses.append("created_at < ?")
            args.append(self.until + ("T99" if len(self.until) == 10 else ""))  # a whole day
        if self.favourite:
            clauses.append("favourite = 1")
        if self.hide_rejected:
            clauses.append("rejected = 0")
        if self.run_id is not None:
            clauses.append("+run_id = ?")
            args.append(self.run_id)
        if self.import_id is not None:
            clauses.append("+run_id = (SELECT run_id FROM imports WHERE id = ?)")
            args.append(self.import_id)
        if self.here:
            clauses.append("source = 'steady'")
        return " AND ".join(clauses), args


@dataclass
class Thumb:
    """One cell of the grid."""

    id: int
    run_id: int
    width: int
    height: int
    prompt: str
    seed: int | None  # None: the file does not say
    created_at: str
    favourite: bool
    rejected: bool
    adherence: float | None = None
    colour: int | None = None  # its dominant colour, 0xRRGGBB (None: its thumbnail is not made yet)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class GalleryPage:
    total: int
    offset: int  # the position of its first item (-1 when asked by `after`)
    items: list[Thumb]
    next: str | None = None  # the `after` that asks for the page after this one (None: the last)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "offset": self.offset, "items": [t.to_dict() for t in self.items],
                "next": self.next}


_THUMB_COLUMNS = ("id, run_id, width, height, substr(prompt, 1, 200), seed, created_at, favourite, rejected, adherence,"
                  " CASE WHEN colour >= 0 THEN colour END")


def gallery_page(catalog: Catalog, flt: GalleryFilter, offset: int = 0, limit: int = 100, after: str = "",
                 cache: pages.PageCache | None = None) -> GalleryPage:  # fmt: skip
    """The page at `offset` (or right after the cursor `after`, a page's `next`) in the filter's
    order; `cache`: what the server learnt of this filter (pages.PageCache), so paging is by key."""
    if offset < 0:
        raise BadInput("offset", offset, "must be 0 or more")
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput("limit", limit, f"must be between 1 and {MAX_PAGE}")
    where, args = flt.check().where()
    key = pages.parse_key(after, flt.sort) if after else None
    with catalog.reading() as conn:
        rows, total, next_key = pages.page(
            conn, flt.sort, where, args, _THUMB_COLUMNS, position=offset, after=key, limit=limit, cache=cache,
            listed="images_fts" in where, through=lambda: "images_live_newest" if _broad(conn, flt) else "")
    items = [Thumb(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8]), r[9], r[10]) for r in rows]
    return GalleryPage(total, -1 if key else offset, items, None if next_key is None else json.dumps(list(next_key)))


BROAD = 5000  # a search matching at least this many images is listed by walking the newest-first index


def _broad(conn: Any, flt: GalleryFilter) -> bool:
    """Whether the search matches much of the catalog (then walking the live images' newest-first
    index and keeping the matches beats reading each match's row and sorting: 66,667 matches of
    100,000 listed in about a fifth of the time; a few hundred matches the other way round). Asks
    the full-text index for at most BROAD matches."""
    if flt.trash or flt.sort != "newest":
        return False
    search = parse(flt.text)
    if not search.include:
        return True  # only exclusions: most of the catalog
    found = conn.execute("SELECT COUNT(*) FROM (SELECT rowid FROM images_fts WHERE images_fts MATCH ? LIMIT ?)",
                         (" AND ".join(search.include), BROAD)).fetchone()[0]  # fmt: skip
    return int(found) >= BROAD


def set_flags(catalog: Catalog, image_id: int, favourite: bool | None = None, rejected: bool | None = None) -> None:
    sets, args = [], []
    for name, value in (("favourite", favourite), ("rejected", rejected)):
        if value is not None:
            sets.append(f"{name} = ?")
            args.append(int(bool(value)))
    if not sets:
        raise BadInput("flags", "", "give favourite or rejected")
    with catalog.transaction() as conn:
        cursor = conn.execute(f"UPDATE images SET {', '.join(sets)} WHERE id = ?", (*args, image_id))
        if cursor.rowcount == 0:
            raise BadInput("image_id", image_id, "no such image")


def trash_location(trash_dir: Path, image_id: int, file_name: str) -> Path:
    return trash_dir / f"{image_id}-{file_name}"


def trash_image(catalog: Catalog, image_id: int, trash_dir: Path) -> Path:
    """Move the image's file to the trash folder; the row stays (restorable). Returns where."""
    with catalog.reading() as conn:
        row = conn.execute("SELECT path, file_name, trash_path FROM images WHERE id = ?", (image_id,)).fetchone()
    if row is None:
        raise BadInput("image_id", image_id, "no such image")
    path, file_name, already = row
    if already:
        raise BadInput("image_id", image_id, "is already in the trash")
    if not os.path.exists(path):
        raise BadInput("image_id", image_id, f"its file {path} is missing")
    trash_dir.mkdir(parents=True, exist_ok=True)
    target = trash_location(trash_dir, image_id, file_name)
    with catalog.transaction() as conn:  # 1. the row says where the file goes
        conn.execute("UPDATE images SET trash_path = ?, trashed_at = ? WHERE id = ?", (str(target), now_iso(), image_id))
    _move(path, target)  # 2. the file goes there
    return target


def restore_image(catalog: Catalog, image_id: int) -> Path:
    """Move a trashed image's file back to where it was."""
    with catalog.reading() as conn:
        row = conn.execute("SELECT path, trash_path FROM images WHERE id = ?", (image_id,)).fetchone()
    if row is None:
        raise BadInput("image_id", image_id, "no such image")
    path, trash_path = row
    if not trash_path:
        raise BadInput("image_id", image_id, "is not in the trash")
    if os.path.exists(path):
        raise BadInput("image_id", image_id, f"cannot be restored: {path} exists again")
    with catalog.transaction() as conn:
        conn.execute("UPDATE images SET trash_path = NULL, trashed_at = NULL WHERE id = ?", (image_id,))
    _move(trash_path, Path(path))
    return Path(path)


def empty_trash(catalog: Catalog) -> int:
    """Delete the trashed files for good, then their rows; returns how many."""
    with catalog.reading() as conn:
        rows = conn.execute("SELECT id, trash_path FROM images WHERE trash_path IS NOT NULL").fetchall()
    for _, trash_path in rows:
        Path(trash_path).unlink(missing_ok=True)
    ids = [r[0] for r in rows]
    with catalog.transaction() as conn:
        runs: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            runs.update(r[0] for r in conn.execute(f"SELECT DISTINCT run_id FROM images WHERE id IN ({marks})", chunk))
            conn.execute(f"DELETE FROM images WHERE id IN ({marks})", chunk)
        recount_runs(conn, runs)
    return len(ids)


def finish_trash_moves(catalog: Catalog, trash_dir: Path) -> int:
    """After a crash: move each file to where its row says it is; returns how many moved."""
    moved = 0
    with catalog.reading() as conn:
        rows = {r[0]: r[1:] for r in conn.execute("SELECT id, path, file_name, trash_path FROM images")}
    for path, _, trash_path in rows.values():  # trashed in the row, file not moved yet
        if trash_path and not os.path.exists(trash_path) and os.path.exists(path):
            _move(path, Path(trash_path))
            moved += 1
    if not trash_dir.is_dir():
        return moved
    with os.scandir(trash_dir) as entries:  # restored in the row, file still in the trash
        for entry in entries:
            image_id, _, name = entry.name.partition("-")
            row = rows.get(int(image_id)) if image_id.isdigit() else None
            if row is not None and row[2] is None and row[1] == name and not os.path.exists(row[0]):
                _move(entry.path, Path(row[0]))
                moved += 1
    return moved


def _move(source: str | Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another file system; copy, then remove
            raise
        shutil.copy2(source, target)
        os.unlink(source)


def run_thumbs(catalog: Catalog, run_ids: list[int], per_run: int = 8) -> dict[int, list[int]]:
    """The first `per_run` image ids (not trashed) of each run, best adherence first, in one query."""
    if not run_ids:
        return {}
    marks = ",".join("?" * len(run_ids))
    with catalog.reading() as conn:
        rows = conn.execute(
            "SELECT run_id, id FROM (SELECT run_id, id, ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY adherence IS NULL, adherence DESC, idx, id) AS n"
            f" FROM images WHERE run_id IN ({marks}) AND trash_path IS NULL) WHERE n <= ? ORDER BY run_id, n",
            (*run_ids, per_run),
        ).fetchall()
    found: dict[int, list[int]] = {run_id: [] for run_id in run_ids}
    for run_id, image_id in rows:
        found[run_id].append(image_id)
    return found
