"""Which catalog image a file is, so that an image made from it records where it came from.

    image_id, params = find_image(catalog, sha256_hex, "/abs/path.png")   # (None, None): not in the catalog

An image is found by its path first (the row whose file it is), then by its content hash (a copy
of a catalog image elsewhere on disk, or one re-imported under another name).
"""

from __future__ import annotations

import json
from typing import Any

from steady.params import ImageParams


def find_image(catalog: Any, sha256: str, path: str) -> tuple[int | None, ImageParams | None]:
    """The catalog row of the file at ``path`` with content ``sha256``: its id and parameters."""
    with catalog.reading() as conn:
        row = conn.execute("SELECT id, params_json FROM images WHERE path = ? OR trash_path = ?", (path, path)).fetchone()
        if row is None:
            row = conn.execute("SELECT id, params_json FROM images WHERE content_hash = ? ORDER BY id LIMIT 1",
                               (sha256,)).fetchone()  # fmt: skip
    if row is None:
        return None, None
    try:
        params = ImageParams.from_dict(json.loads(row[1]))
    except (ValueError, TypeError):
        params = None  # a row whose parameters are not ours (an import without any): the id still links
    return int(row[0]), params
