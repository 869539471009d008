"""Gallery pages by key, not by OFFSET: a page at any position costs about the same at 100,000
images as at 1,000.

    cache = PageCache()                                   # one per server: what it learnt of each filter
    rows, total, next_key = page(conn, "newest", where, args, position=12_000, limit=120, cache=cache)
    rows, total, next_key = page(conn, "newest", where, args, after=next_key, limit=120, cache=cache)

Every order is a tuple of expressions, all descending, that ends in the row id (unique), with an
index over the same expressions (migration m009), so "the rows after this key" is a range of
that index. The page's virtual grid asks by position; the cache remembers, for each filter, the
key that starts every window of WINDOW rows it has served (a window's last row tells where the
next one starts), and the filter's count, until the catalog changes (a write by this connection
or another: total_changes, PRAGMA data_version). Scrolling therefore only ever reads its own
rows; a jump to a window never reached walks the keys from the nearest known window (an index
walk, once: the windows it passes are remembered).

A prompt search is listed instead: its matching ids, in order, are read once (the full-text
index gives the matches; one sort) and kept (8 bytes an image; PageCache holds few filters), and
every page is a slice of that list read by id. SQLite cannot walk the order's index and ask the
full-text index about each row cheaply, so this is what keeps a search that matches most of the
catalog as quick to page through as one that matches a few rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steady.errors import BadInput

WINDOW = 120
# Each order's key, all descending; the expressions are the ones its index is on (m009).
ORDERS: dict[str, tuple[str, ...]] = {
    "newest": ("created_at", "id"),
    "adherence": ("adherence IS NOT NULL", "COALESCE(adherence, 0)", "created_at", "id"),
}
Key = tuple[Any, ...]


@dataclass
class _Known:
    stamp: tuple[int, int]
    total: int | None = None
    starts: dict[int, Key] = field(default_factory=dict)  # window -> key of its first row
    ids: array | None = None  # a listed filter (a search): its ids in order


class PageCache:
    """What was learnt about recent filters (at most `filters` of them, least recent dropped)."""

    def __init__(self, filters: int = 8) -> None:
        self._filters = filters
        self._known: OrderedDict[tuple[Any, ...], _Known] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, name: tuple[Any, ...], stamp: tuple[int, int]) -> _Known:
        with self._lock:
            entry = self._known.get(name)
            if entry is None or entry.stamp != stamp:
                entry = _Known(stamp)
                self._known[name] = entry
            self._known.move_to_end(name)
            while len(self._known) > self._filters:
                self._known.popitem(last=False)
            return entry


def stamp(conn: sqlite3.Connection) -> tuple[int, int]:
    """Changes when anything writes the catalog: this connection (total_changes) or another (data_version)."""
    return conn.total_changes, int(conn.execute("PRAGMA data_version").fetchone()[0])


def parse_key(text: str, sort: str) -> Key:
    """A cursor as the API takes it (the JSON list a page's `next` gave), checked."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadInput("after", text[:80], "must be the `next` value of a page") from exc
    if not isinstance(value, list) or len(value) != len(ORDERS[sort]) or not all(
            isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):  # fmt: skip
        raise BadInput("after", text[:80], f"must be the `next` value of a page sorted by {sort}")
    return tuple(value)


def page(conn: sqlite3.Connection, sort: str, where: str, args: list[Any], columns: str, *, position: int = 0,
         after: Key | None = None, limit: int = WINDOW, cache: PageCache | None = None, listed: bool = False,
         through: Callable[[], str] | None = None) -> tuple[list[tuple[Any, ...]], int, Key | None]:  # fmt: skip
    """`limit` rows (`columns` selected) at `position` in the filter's order, or right after the
    key `after`; with the filter's count and the key to ask for the next page (None: the end).
    `listed`: keep the filter's ids in order (a prompt search) instead of walking by key; `through`,
    asked only when the list is made: the index to list them by walking (a search that matches
    much of the catalog), or "" to read each match's row and sort them."""
    keys = ORDERS[sort]
    order = ", ".join(f"{k} DESC" for k in keys)
    known = (cache or PageCache()).known((sort, where, tuple(args)), stamp(conn))
    if listed:
        return _listed(conn, keys, order, where, args, columns, known, position, after, limit, through)
    if known.total is None:  # counted on the covering index of the live images (it holds every filtered column)
        hint = " INDEXED BY images_live_newest" if where.startswith("trash_path IS NULL") else ""
        known.total = int(conn.execute(f"SELECT COUNT(*) FROM images{hint} WHERE {where}", args).fetchone()[0])
    select = f"SELECT {', '.join(keys)}, {columns} FROM images WHERE {where}"
    if after is not None:
        rows = conn.execute(f"{select} AND ({', '.join(keys)}) < ({', '.join('?' * len(keys))})"
                            f" ORDER BY {order} LIMIT ?", (*args, *after, limit + 1)).fetchall()  # fmt: skip
        return _split(rows, len(keys), limit, known.total)
    window, skip = divmod(position, WINDOW)
    start = _start_of(conn, where, keys, order, args, known, window)
    if start is None:
        return [], known.total, None
    bound = f" AND ({', '.join(keys)}) <= ({', '.join('?' * len(keys))})" if start else ""
    rows = conn.execute(f"{select}{bound} ORDER BY {order} LIMIT ? OFFSET ?",  # OFFSET < WINDOW: within a window
                        (*args, *start, limit + 1, skip)).fetchall()  # fmt: skip
    for i in range(WINDOW - skip, len(rows), WINDOW):  # remember where the next windows start
        known.starts.setdefault(window + (skip + i) // WINDOW, tuple(rows[i][: len(keys)]))
    return _split(rows, len(keys), limit, known.total)


def _listed(conn: sqlite3.Connection, keys: tuple[str, ...], order: str, where: str, args: list[Any], columns: str,
            known: _Known, position: int, after: Key | None, limit: int, through: Callable[[], str] | None,
            ) -> tuple[list[tuple[Any, ...]], int, Key | None]:  # fmt: skip
    if known.ids is None:
        index = through() if through is not None else ""
        source = f"images INDEXED BY {index}" if index else "images"
        known.ids = array("q", (row[0] for row in conn.execute(f"SELECT id FROM {source} WHERE {where} ORDER BY {order}", args)))
        known.total = len(known.ids)
    ids = known.ids
    if after is not None:
        try:
            position = ids.index(int(after[-1])) + 1
        except ValueError:
            position = len(ids)  # that row left the filter: the end
    chosen = ids[position:position + limit + 1].tolist()
    if not chosen:
        return [], len(ids), None
    marks = ",".join("?" * len(chosen))
    found = {row[len(keys)]: row for row in conn.execute(
        f"SELECT {', '.join(keys)}, {columns} FROM images WHERE id IN ({marks})", chosen)}  # fmt: skip
    rows = [found[i] for i in chosen if i in found]
    return _split(rows, len(keys), limit, len(ids))


def _split(rows: list[tuple[Any, ...]], n_keys: int, limit: int, total: int) -> tuple[list[tuple[Any, ...]], int, Key | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = tuple(rows[-1][:n_keys]) if more and rows else None
    return [row[n_keys:] for row in rows], total, next_key


def _start_of(conn: sqlite3.Connection, where: str, keys: tuple[str, ...], order: str, args: list[Any],
              known: _Known, window: int) -> Key | None:  # fmt: skip
    """The key of the first row of `window` (() for the first window), or None past the end."""
    if window == 0:
        return ()
    if window * WINDOW >= (known.total or 0):
        return None
    if window in known.starts:
        return known.starts[window]
    # Walk from the nearest window whose start is known, remembering every start on the way.
    base = max((w for w in known.starts if w < window), default=0)
    bound = f" AND ({', '.join(keys)}) <= ({', '.join('?' * len(keys))})" if base else ""
    walk = (f"SELECT {', '.join(f'k{i}' for i in range(len(keys)))}, n FROM (SELECT "
            + ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))
            + f", row_number() OVER (ORDER BY {order}) - 1 AS n FROM images WHERE {where}{bound}"
            + f" ORDER BY {order} LIMIT ?) WHERE n % {WINDOW} = 0 AND n > 0")
    for *key, n in conn.execute(walk, (*args, *(known.starts[base] if base else ()), (window - base) * WINDOW + 1)):
        known.starts[base + n // WINDOW] = tuple(key)
    return known.starts.get(window)
