"""Make the catalog and the output files agree again after a crash.

Images are written first (atomically, parameters inside) and recorded second, so a crash can
leave exactly three kinds of disagreement, each repaired here:

    a) a temp file from a write that never finished      -> deleted
    b) a finished PNG whose row was never committed       -> recorded from its `steady` chunk,
       under its own run when the file name says which (engine names files RUN-INDEX-SEED.png)
       and that run agrees, otherwise under a run with status 'interrupted'
       (a PNG without our chunk is someone else's: left alone and counted)
    c) a row whose file is gone                            -> removed
    d) a move to or from the trash that a crash cut short  -> finished as the row says

Fast for tens of thousands of files: one query for the known paths, one os.scandir walk, and
only unrecorded PNGs are opened (their text chunks only; pixels are never decoded).

    python -c "from steady.catalog import open_catalog, reconcile; from steady.config import settings;
               print(reconcile(open_catalog(), settings().outputs_dir))"
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from steady.catalog import queries
from steady.catalog.db import Catalog, file_sha256, insert_image, prompt_id_for, recount_runs
from steady.catalog.walk import walk_files
from steady.images.pngmeta import is_temp_name, read_steady_params
from steady.params import ImageParams

# steady.jobs.queue names files f"{run_id:05d}-{index:02d}-{seed}.png".
_ENGINE_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)\.png$")


@dataclass
class ReconcileReport:
    temp_files_removed: int = 0
    images_recorded: int = 0  # b) PNGs with our chunk that had no row
    runs_created: int = 0  # 'interrupted' runs made to hold them
    foreign_pngs: int = 0  # PNGs without our chunk (or unreadable): left alone
    rows_removed: int = 0  # c) rows whose file was gone
    runs_interrupted: int = 0  # 'running' runs marked 'interrupted' (interrupt_running=True)
    rows_unreachable: int = 0  # rows outside outputs_dir whose folder is missing: kept
    trash_moves_finished: int = 0  # d) files moved to where their row says (trash or back)
    files_seen: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Found:
    path: str
    params: ImageParams
    mtime: float
    size: int


@dataclass
class _Slot:
    run_id: int
    index: int


@dataclass
class _Walk:
    pngs: set[str] = field(default_factory=set)
    unreadable_dirs: list[str] = field(default_factory=list)


def reconcile(
    catalog: Catalog,
    outputs_dir: str | os.PathLike[str],
    *,
    temp_min_age_s: float = 60.0,
    interrupt_running: bool = False,
    trash_dir: str | os.PathLike[str] | None = None,
) -> ReconcileReport:
    """Repair the catalog against the files under `outputs_dir` (see the module docstring).

    temp_min_age_s: temp files younger than this are left alone, because another process may
        be writing them right now; pass 0 when no writer can be running.
    interrupt_running: mark runs still 'running' as 'interrupted'; only the caller knows that
        no worker is alive (e.g. the supervisor at startup), so it is off by default.
    trash_dir: the trash folder (default: the one beside the catalog's outputs, home/trash).
    """
    from steady.catalog.gallery import finish_trash_moves

    started = time.perf_counter()
    report = ReconcileReport()
    root = Path(outputs_dir).resolve()
    # 0. Finish trash moves a crash interrupted (d), so every row says where its file is.
    report.trash_moves_finished = finish_trash_moves(catalog, Path(trash_dir) if trash_dir else root.parent / "trash")
    # 1. Walk the outputs folder once: remove stale temp files, note every PNG.
    walk = _walk(root, temp_min_age_s, report) if root.is_dir() else _Walk()
    if not root.is_dir():
        report.problems.append(f"outputs folder {root} does not exist; no rows under it were removed")
    # 2. One query for what the catalog knows.
    with catalog.reading() as conn:
        known = queries.image_paths(conn)
    # 3. Unrecorded PNGs: ours (with the steady chunk) get a row, others are counted.
    found: list[_Found] = []
    for path in sorted(walk.pngs - known.keys()):
        params = read_steady_params(path)
        if params is None:
            report.foreign_pngs += 1
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue  # deleted since the walk: nothing to record
        found.append(_Found(path, params, stat.st_mtime, stat.st_size))
    # 4. Rows without a file.
    gone = _rows_without_files(known, root, walk, report)
    # 5. One transaction for all repairs.
    with catalog.transaction() as conn:
        if interrupt_running:
            cursor = conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'", (_iso(time.time()),)
            )
            report.runs_interrupted = cursor.rowcount
        touched: set[int] = set()
        for start in range(0, len(gone), 500):  # stay under SQLite's bound-parameter limit
            chunk = gone[start:start + 500]
            touched.update(row[0] for row in conn.execute(
                f"SELECT DISTINCT run_id FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk))
            conn.execute(f"DELETE FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        report.rows_removed = len(gone)
        _record(conn, found, report)
        recount_runs(conn, touched)
    report.seconds = time.perf_counter() - started
    return report


def _walk(root: Path, temp_min_age_s: float, report: ReconcileReport) -> _Walk:
    result = _Walk()
    now = time.time()

    def unreadable(folder: str, exc: OSError) -> None:
        # A folder we cannot list may still hold the files of its rows: keep them.
        result.unreadable_dirs.append(folder)
        report.problems.append(f"cannot list {folder}: {exc.strerror or exc}")

    for entry in walk_files(root, unreadable):
        if is_temp_name(entry.name):
            _remove_temp(entry, now, temp_min_age_s, report)
        elif entry.name.lower().endswith(".png"):
            result.pngs.add(entry.path)
            report.files_seen += 1
    return result


def _remove_temp(entry: os.DirEntry[str], now: float, min_age: float, report: ReconcileReport) -> None:
    try:
        if now - entry.stat(follow_symlinks=False).st_mtime < min_age:
            return
        os.unlink(entry.path)
        report.temp_files_removed += 1
    except FileNotFoundError:
        pass  # its writer finished (renamed it) or removed it meanwhile
    except OSError as exc:
        report.problems.append(f"cannot remove {entry.path}: {exc.strerror or exc}")


def _rows_without_files(known: dict[str, int], root: Path, walk: _Walk, report: ReconcileReport) -> list[int]:
    prefix = str(root) + os.sep
    blocked = tuple(folder + os.sep for folder in walk.unreadable_dirs)
    root_listed = root.is_dir()
    gone: list[int] = []
    for path, image_id in known.items():
        if path.startswith(prefix):
            if root_listed and path not in walk.pngs and not (blocked and path.startswith(blocked)):
                gone.append(image_id)
        elif not os.path.exists(path):
            # Outside outputs_dir (a user's --out-dir): a missing folder may be an unmounted
            # drive, so only a missing file in a present folder counts as deleted.
            if os.path.isdir(os.path.dirname(path)):
                gone.append(image_id)
            else:
                report.rows_unreachable += 1
    return gone


def _record(conn: Any, found: list[_Found], report: ReconcileReport) -> None:
    """Insert rows for unrecorded PNGs: under their own run when the engine's file name and
    the run's prompt agree, otherwise grouped by prompt and model under an 'interrupted' run."""
    groups: dict[tuple[str, str, str, str], list[_Found]] = {}
    for item in sorted(found, key=lambda item: (item.mtime, item.path)):
        slot = _own_run(conn, item)
        if slot is not None:
            insert_image(conn, slot.run_id, item.path, slot.index, item.params, 0.0, 0, 0, item.size,
                         _iso(item.mtime), _sha256_or_none(item.path))
            report.images_recorded += 1
            continue
        p = item.params
        groups.setdefault((p.prompt, p.negative_prompt, p.model_name, p.model_hash), []).append(item)
    for items in groups.values():
        run_id = _interrupted_run(conn, items, report)
        next_index = conn.execute(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM images WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        for offset, item in enumerate(items):
            insert_image(conn, run_id, item.path, next_index + offset, item.params, 0.0, 0, 0, item.size,
                         _iso(item.mtime), _sha256_or_none(item.path))
            report.images_recorded += 1


def _sha256_or_none(path: str) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None  # gone or unreadable since the scan: the row is still worth having


def _own_run(conn: Any, item: _Found) -> _Slot | None:
    match = _ENGINE_NAME.match(os.path.basename(item.path))
    if match is None or int(match.group(3)) != item.params.seed:
        return None
    row = conn.execute(
        "SELECT p.text, p.negative_prompt FROM runs r JOIN prompts p ON p.id = r.prompt_id WHERE r.id = ?",
        (int(match.group(1)),),
    ).fetchone()
    if row is None or (row[0], row[1]) != (item.params.prompt, item.params.negative_prompt):
        return None
    return _Slot(run_id=int(match.group(1)), index=int(match.group(2)))


def _interrupted_run(conn: Any, items: list[_Found], report: ReconcileReport) -> int:
    params = items[0].params
    prompt_id = prompt_id_for(conn, params.prompt, params.negative_prompt)
    row = conn.execute(
        "SELECT id FROM runs WHERE prompt_id = ? AND model_name = ? AND model_hash = ? AND status = 'interrupted'"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        (prompt_id, params.model_name, params.model_hash),
    ).fetchone()
    if row is not None:
        return int(row[0])
    request = params.request(n_images=len(items), model=params.model_name)
    row = conn.execute(
        "INSERT INTO runs (prompt_id, created_at, finished_at, status, n_requested, model_name, model_hash,"
        " request_json) VALUES (?, ?, ?, 'interrupted', ?, ?, ?, ?) RETURNING id",
        (prompt_id, _iso(items[0].mtime), _iso(items[-1].mtime), len(items), params.model_name, params.model_hash,
         json.dumps(request.to_dict())),
    ).fetchone()
    report.runs_created += 1
    return int(row[0])


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="microseconds")
