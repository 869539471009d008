"""Index PNGs that already exist (A1111, ComfyUI, InvokeAI, plain, ours) into the catalog, in place.

Nothing is copied or moved: each PNG under the folder becomes an images row pointing at the
file where it is, with the parameters its metadata holds (steady.images.pngmeta), the size from
its PNG header, its file time as created_at, `source` saying which tool wrote it and the sha256
of its bytes as `content_hash`. An import is one group (steady.catalog.groups): the folder's
images go under its one run of status 'imported', which the prompt history leaves out, and
importing the folder again adds to the same group.

Idempotent and restartable: a path already in the catalog is skipped without reading it, and a
file whose content hash is already recorded (a copy under another path, also of an image steady
generated: `Catalog.add_image` records the hash too) is a duplicate; rows are
committed in batches, one transaction each, so an import killed half-way leaves whole batches
and running it again adds the rest. Memory stays flat however many files there are: the folder
is walked as a stream, at most one batch of prepared rows is held, and the only thing loaded up
front is the set of catalog paths under the folder.

    python -c "from steady.catalog import open_catalog; from steady.catalog.importer import import_folder;
               print(import_folder(open_catalog(), '/path/to/outputs').to_dict())"
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from steady.catalog.db import Catalog, insert_image, now_iso
from steady.catalog.groups import ImportGroup, import_group, touch_group
from steady.catalog.walk import walk_files
from steady.errors import BadInput
from steady.images.pngmeta import SOURCES, PngInfo, is_temp_name, read_png_info
from steady.params import ImageParams

MAX_PROBLEM_LINES = 50
_CHUNK_BYTES = 1 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SQLITE_INT_MAX = 2**63 - 1

# ImageParams fields read from metadata. What the metadata does not say (or says unusably) is
# unknown: "" for text, None for numbers, never an invented value. width and height are not
# here: they come from the PNG header, which is always right.
_TEXT_FIELDS = ("prompt", "negative_prompt", "sampler", "model_name", "model_hash", "model_arch", "device", "dtype",
                "steady_version")
_WHOLE_FIELDS = ("steps", "clip_skip")  # seed has its own rules

ProgressCallback = Callable[[int, int], None]


@dataclass
class ImportReport:
    """What one import did. `problems` lists skipped files and unreadable folders ("path: why"),
    `warning_lines` metadata that could only partly be read; each keeps its first 50 lines."""

    folder: str = ""
    files_seen: int = 0  # PNG files found under the folder (temp files of ours excluded)
    added: int = 0
    already_known: int = 0  # the same path is already in the catalog
    duplicates: int = 0  # the same bytes are already recorded under another path
    skipped: int = 0  # not a PNG, unreadable, or over Pillow's decompression-bomb limit
    by_source: dict[str, int] = field(default_factory=lambda: {name: 0 for name in SOURCES})
    warnings: int = 0  # metadata values that could not be read, over all added images
    runs_created: int = 0  # 1 when this import made the folder's group (its run), else 0
    import_id: int | None = None  # the folder's group (steady.catalog.groups), once it has one
    problems: list[str] = field(default_factory=list)
    warning_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def problem(self, path: str, why: str) -> None:
        if len(self.problems) < MAX_PROBLEM_LINES:
            self.problems.append(f"{path}: {why}")

    def skip(self, path: str, why: str) -> None:
        self.skipped += 1
        self.problem(path, why)

    def warn(self, path: str, lines: list[str]) -> None:
        self.warnings += len(lines)
        for line in lines:
            if len(self.warning_lines) < MAX_PROBLEM_LINES:
                self.warning_lines.append(f"{path}: {line}")


@dataclass
class _Pending:
    """One file read and ready to be recorded."""

    path: str
    content_hash: str
    file_size: int
    created_at: str
    source: str
    params: ImageParams


@dataclass
class _Header:
    content_hash: str
    width: int
    height: int


@dataclass
class _State:
    """What one import call carries from batch to batch (all of it small)."""

    known_paths: set[str]
    folder: str
    total: int
    done: int = 0
    group: ImportGroup | None = None  # made with the first row written
    next_index: int = 0


class _Unusable(Exception):
    """This file cannot be imported; the message says why."""


def check_folder(folder: str | os.PathLike[str]) -> Path:
    """The folder as an absolute path without symlinks, or BadInput naming `folder`."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise BadInput("folder", str(folder), "no such folder")
    if not path.is_dir():
        raise BadInput("folder", str(folder), "is a file, not a folder; give the folder that holds the PNGs")
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        raise BadInput("folder", str(folder), f"cannot be listed ({exc.strerror or exc})") from exc
    return path.resolve()


def import_folder(
    catalog: Catalog,
    folder: str | os.PathLike[str],
    *,
    on_progress: ProgressCallback | None = None,
    batch: int = 500,
) -> ImportReport:
    """Record every PNG under `folder` (recursively, symlinks not followed) that the catalog
    lacks; see the module docstring. `on_progress(done, total)` is called once per file."""
    started = time.perf_counter()
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise BadInput("batch", batch, "must be a whole number of at least 1")
    # 1. Check the folder before touching the catalog.
    root = check_folder(folder)
    report = ImportReport(folder=str(root))
    # 2. A quick walk to count the PNGs, so that a progress bar has a total.
    total = sum(1 for _ in _walk_pngs(str(root), None))
    # 3. What the catalog already has under this folder (trashed files included).
    with catalog.reading() as conn:
        known = _known_paths(conn, str(root))
    state = _State(known_paths=known, folder=str(root), total=total)
    # 4. Stream the files: hash and read each new one, write a batch when it is full.
    pending: list[_Pending] = []
    pending_hashes: set[str] = set()
    for entry in _walk_pngs(str(root), report):
        report.files_seen += 1
        item = _prepare(catalog, entry, state, pending_hashes, report)
        if item is not None:
            pending.append(item)
            pending_hashes.add(item.content_hash)
        if len(pending) >= batch:
            _write_batch(catalog, pending, state, report)
            pending.clear()
            pending_hashes.clear()
        state.done += 1
        if on_progress is not None:
            on_progress(state.done, max(state.total, state.done))
    # 5. The last, partial batch.
    if pending:
        _write_batch(catalog, pending, state, report)
    report.seconds = time.perf_counter() - started
    return report


# ------------------------------------------------------------------------------------ walking


def _walk_pngs(root: str, report: ImportReport | None) -> Iterator[os.DirEntry[str]]:
    """PNG files under `root`, as a stream (steady.catalog.walk: symlinks are not followed)."""

    def unreadable(folder: str, exc: OSError) -> None:
        if report is not None:
            report.problem(folder, f"cannot list the folder ({exc.strerror or exc}); its files were not imported")

    for entry in walk_files(root, unreadable):
        if entry.name.lower().endswith(".png") and not is_temp_name(entry.name):
            yield entry


def _known_paths(conn: sqlite3.Connection, root: str) -> set[str]:
    # Only paths under the folder can match; a range on the unique path index finds them
    # without reading the rest of the catalog. '0' is the character after os.sep ('/').
    low = root.rstrip(os.sep) + os.sep
    high = low[:-1] + chr(ord(os.sep) + 1)
    known = {row[0] for row in conn.execute("SELECT path FROM images WHERE path >= ? AND path < ?", (low, high))}
    # A trashed image's file lives at trash_path; it is not a new image if the trash is in here.
    known.update(row[0] for row in conn.execute(
        "SELECT trash_path FROM images WHERE trash_path >= ? AND trash_path < ?", (low, high)))
    return known


# ------------------------------------------------------------------------------------ reading


def _prepare(
    catalog: Catalog, entry: os.DirEntry[str], state: _State, pending_hashes: set[str], report: ImportReport
) -> _Pending | None:
    """Read one file: None when it is known, a duplicate or unusable (counted in `report`)."""
    path = entry.path
    # 1. A recorded path is skipped without opening the file.
    if path in state.known_paths:
        report.already_known += 1
        return None
    # 2. Hash the bytes (reading the header on the way) and look the hash up.
    try:
        stat = entry.stat(follow_symlinks=False)
        header = _hash_and_header(path)
    except _Unusable as exc:
        report.skip(path, str(exc))
        return None
    except OSError as exc:
        report.skip(path, f"cannot be read ({exc.strerror or exc})")
        return None
    if header.content_hash in pending_hashes or _hash_recorded(catalog, header.content_hash):
        report.duplicates += 1
        return None
    # 3. The metadata, whichever tool wrote it.
    try:
        info = read_png_info(path)
    except BadInput as exc:
        report.skip(path, exc.why)
        return None
    except Exception as exc:  # noqa: BLE001 - one damaged file is reported and skipped, never stops the import
        # (Pillow's chunk parsers can raise more than they document: zlib.error, struct.error)
        report.skip(path, f"cannot be read as a PNG ({type(exc).__name__}: {exc})")
        return None
    problems: list[str] = []
    params = image_params_from(info, header.width, header.height, problems)
    report.warn(path, info.warnings + problems)
    return _Pending(
        path=path, content_hash=header.content_hash, file_size=stat.st_size, created_at=_iso(stat.st_mtime),
        source=info.source, params=params,
    )


def _hash_and_header(path: str) -> _Header:
    """sha256 of the file, read in chunks, and the size its IHDR chunk claims. Refuses a file
    that is not a PNG, and one over Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS,
    left as the user has it; Pillow warns above it and refuses above twice it: we refuse both)."""
    from PIL import Image

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        first = handle.read(_CHUNK_BYTES)
        digest.update(first)
        # Signature (8 bytes), then IHDR: length (4), type (4), width (4), height (4).
        if len(first) < 24 or first[:8] != _PNG_SIGNATURE:
            raise _Unusable("is not a PNG image")
        if first[12:16] != b"IHDR":
            raise _Unusable("is not a valid PNG (no IHDR chunk first)")
        width, height = struct.unpack(">II", first[16:24])
        if width == 0 or height == 0:
            raise _Unusable(f"is not a valid PNG (its header says {width}x{height})")
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width * height > limit:
            raise _Unusable(
                f"refused as a possible decompression bomb: its header says {width}x{height} = "
                f"{width * height:,} pixels, over Pillow's limit of {int(limit):,}"
            )
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return _Header(content_hash=digest.hexdigest(), width=width, height=height)


def _hash_recorded(catalog: Catalog, content_hash: str) -> bool:
    with catalog.reading() as conn:
        return conn.execute("SELECT 1 FROM images WHERE content_hash = ? LIMIT 1", (content_hash,)).fetchone() is not None


def image_params_from(info: PngInfo, width: int, height: int, problems: list[str]) -> ImageParams:
    """ImageParams for an imported PNG: what the metadata says; what it lacks is unknown ("" for
    text, None for steps, CFG, seed and clip skip: a plain PNG knows only its size), every other
    value in `extra`. Appends to `problems` a line for each value present but unusable."""
    values = dict(info.params)
    extra: dict[str, Any] = {}
    nested = values.pop("extra", None)  # our own chunk keeps its extras under "extra"
    if isinstance(nested, dict):
        extra.update(nested)
    text = {name: _text(values.pop(name, ""), name, problems) for name in _TEXT_FIELDS}
    ints = {name: _whole(values.pop(name, None), name, problems) for name in _WHOLE_FIELDS}
    cfg_scale = _number(values.pop("cfg_scale", None), "cfg_scale", problems)
    # Seeds: -1 (A1111's "random") says nothing about the seed used: unknown. ComfyUI seeds go
    # up to 2**64 - 1, past what SQLite stores, so those keep their value in extra.
    seed = values.pop("seed", None)
    if isinstance(seed, int) and not isinstance(seed, bool) and not -1 <= seed <= _SQLITE_INT_MAX:
        extra["source_seed"] = seed
        seed = None
    ints["seed"] = None if seed == -1 else _whole(seed, "seed", problems)
    if ints["clip_skip"] == 0:  # some tools write 0 for "not skipping", which A1111 calls 1
        ints["clip_skip"] = 1
    # The header's size is the file's; a different size in the metadata (an upscale) is kept.
    meta_size = (values.pop("width", None), values.pop("height", None))
    if meta_size != (None, None) and meta_size != (width, height):
        extra["metadata_size"] = f"{meta_size[0]}x{meta_size[1]}"
    extra.update(values)
    return ImageParams(width=width, height=height, cfg_scale=cfg_scale, extra=_json_safe(extra), **text, **ints)


def _text(value: Any, name: str, problems: list[str]) -> str:
    if isinstance(value, str):
        return value
    problems.append(f"{name}={value!r} is not text; recorded as \"\"")
    return ""


def _whole(value: Any, name: str, problems: list[str]) -> int | None:
    """A whole number, or None: not said (no line) or not usable (a line in `problems`)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _SQLITE_INT_MAX:
        return value
    problems.append(f"{name}={value!r} is not a usable whole number; recorded as unknown")
    return None


def _number(value: Any, name: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        problems.append(f"{name}={value!r} is not a usable number; recorded as unknown")
        return None
    return number


def _json_safe(value: Any) -> Any:
    """`value` as plain JSON: the row's params_json must be writable whatever a parser left in
    (NaN and infinities become null, keys become text, anything else its str())."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def _iso(timestamp: float) -> str:
    """A file time in the catalog's format (db.now_iso): ISO 8601, UTC, microseconds; now for a
    file time outside what datetime can hold."""
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="microseconds")
    except (OverflowError, OSError, ValueError):
        return now_iso()


# ------------------------------------------------------------------------------------ writing


def _write_batch(catalog: Catalog, pending: list[_Pending], state: _State, report: ImportReport) -> None:
    """Record one batch in one transaction, under the folder's group (made with the first row).
    Each row has its own savepoint, so one row the database refuses is reported and skipped
    without losing the rest of the batch."""
    with catalog.transaction() as conn:
        if state.group is None:
            made = conn.execute("SELECT 1 FROM imports WHERE folder = ?", (state.folder,)).fetchone() is None
            state.group = import_group(conn, state.folder)
            report.runs_created += int(made)
            report.import_id = state.group.id
            last = conn.execute("SELECT MAX(idx) FROM images WHERE run_id = ?", (state.group.run_id,)).fetchone()[0]
            state.next_index = 0 if last is None else int(last) + 1
        for item in pending:
            # Another process may have recorded the path or the bytes since they were read.
            if conn.execute("SELECT 1 FROM images WHERE path = ?", (item.path,)).fetchone() is not None:
                report.already_known += 1
                continue
            if conn.execute("SELECT 1 FROM images WHERE content_hash = ? LIMIT 1",
                            (item.content_hash,)).fetchone() is not None:
                report.duplicates += 1
                continue
            conn.execute("SAVEPOINT import_image")
            try:
                insert_image(
                    conn, state.group.run_id, item.path, state.next_index, item.params, 0.0, 0, 0, item.file_size,
                    item.created_at, item.content_hash, recount=False, source=item.source,
                )
                conn.execute("RELEASE import_image")
            except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
                conn.execute("ROLLBACK TO import_image")
                conn.execute("RELEASE import_image")
                report.skip(item.path, f"the catalog refused its row ({type(exc).__name__}: {exc})")
                continue
            state.next_index += 1
            report.added += 1
            report.by_source[item.source] = report.by_source.get(item.source, 0) + 1
        touch_group(conn, state.group)
