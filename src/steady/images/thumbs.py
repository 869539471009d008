"""Thumbnails, made once per image and size, cached on disk, written atomically.

    path = thumbnail(source_png, settings().thumbs_dir, image_id=42, size=256)
    write_pending(image, thumbs_dir, png_path)          # the worker, as it writes the PNG (no id yet)
    colour = adopt_pending(thumbs_dir, png_path, 42)    # once the row exists: the grid's thumbnail
    evict(thumbs_dir, max_bytes=2 << 30)                # the cache's bound: least recently used go

Made ahead: the worker writes its image's grid thumbnail (AHEAD, 256 px) beside the cache as it
writes the PNG, named by the PNG's path since the image id comes later; the supervisor renames it
to its id when it records the row. Import makes them in a background pass (steady.catalog.ahead).
Each made-ahead thumbnail also gives the image's dominant colour, which the catalog keeps so the
page paints a cell in it until its thumbnail arrives.

A thumbnail is a JPEG (small, fast to decode in the browser) at most `size` pixels on its long
side, named by image id and size and sharded into 256 folders; it is remade when the source is
newer. The source is a path or a file already open for reading (the web server opens it itself,
to check what it opened). Decoding keeps Pillow's decompression-bomb limit: a bomb raises BadInput.
Pixels are released as soon as the thumbnail is written, so serving thousands keeps memory flat.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from steady.errors import BadInput

SIZES = (128, 256, 512)
AHEAD = 256  # the size the grid shows, made ahead
FRESH_S = 86_400  # a thumbnail served is marked used (its mtime) at most once a day


def thumb_path(thumbs_dir: Path, image_id: int, size: int) -> Path:
    return thumbs_dir / f"{image_id % 256:02x}" / f"{image_id}-{size}.jpg"


def thumbnail(source: str | os.PathLike[str] | BinaryIO, thumbs_dir: Path, image_id: int, size: int = 256,
              name: str = "") -> Path:  # fmt: skip
    """The cached thumbnail of `source`, made now if it is missing or older than the source
    (`name`: what an error calls an open file)."""
    from PIL import Image

    if size not in SIZES:
        raise BadInput("size", size, "must be one of " + ", ".join(map(str, SIZES)))
    target = thumb_path(thumbs_dir, image_id, size)
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the image")
    try:
        source_mtime = os.fstat(source.fileno()).st_mtime if hasattr(source, "fileno") else os.stat(source).st_mtime
    except OSError as exc:
        raise BadInput("image", name, f"cannot be read ({exc.strerror})") from exc
    try:
        made = target.stat().st_mtime
        if made >= source_mtime:
            if time.time() - made > FRESH_S:  # used now: the cache evicts the least recently used first
                os.utime(target)
            return target
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Image.open(source) as image:
            image.draft("RGB", (size, size))  # JPEG sources decode at a fraction of full size
            image.thumbnail((size, size), Image.Resampling.LANCZOS if max(image.size) <= 2 * size else Image.Resampling.BICUBIC)
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise BadInput("image", name, f"cannot be decoded ({exc})") from exc
    _save(rgb, target)
    return target


def _save(rgb: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            rgb.save(handle, format="JPEG", quality=85, optimize=True)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def dominant_colour(rgb: Any) -> int:
    """The most common colour of a PIL RGB image (of 8, after a 16x16 reduction) as 0xRRGGBB."""
    from PIL import Image

    small = rgb.convert("RGB").resize((16, 16), Image.Resampling.BOX).quantize(8)
    count, index = max(small.getcolors())
    palette = small.getpalette()[3 * index: 3 * index + 3]
    return (palette[0] << 16) | (palette[1] << 8) | palette[2]


def pending_path(thumbs_dir: Path, png_path: str | os.PathLike[str]) -> Path:
    """Where the worker leaves the grid thumbnail of the PNG it wrote, before the image has an id."""
    digest = hashlib.sha1(os.fsencode(os.path.abspath(png_path))).hexdigest()
    return thumbs_dir / "new" / f"{digest}-{AHEAD}.jpg"


def write_pending(image: Any, thumbs_dir: Path, png_path: str | os.PathLike[str]) -> Path:
    """The grid thumbnail of a PIL image just written to `png_path` (steady.worker.recipe, step 7)."""
    from PIL import Image

    rgb = image.convert("RGB")
    rgb.thumbnail((AHEAD, AHEAD), Image.Resampling.LANCZOS)
    target = pending_path(thumbs_dir, png_path)
    _save(rgb, target)
    return target


def adopt_pending(thumbs_dir: Path, png_path: str | os.PathLike[str], image_id: int) -> int | None:
    """The worker's thumbnail of `png_path` under the image's id; its dominant colour (None when
    there was none: the page then makes it when first shown)."""
    from PIL import Image

    source = pending_path(thumbs_dir, png_path)
    target = thumb_path(thumbs_dir, image_id, AHEAD)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        with Image.open(target) as image:
            return dominant_colour(image)
    except (OSError, Image.DecompressionBombError, ValueError):
        return None


def make_ahead(source: str | os.PathLike[str], thumbs_dir: Path, image_id: int) -> int:
    """Make the grid thumbnail of a recorded image now (import's background pass); its colour."""
    from PIL import Image

    path = thumbnail(source, thumbs_dir, image_id, AHEAD)
    with Image.open(path) as image:
        return dominant_colour(image)


def evict(thumbs_dir: Path, max_bytes: int) -> int:
    """Keep the cache under `max_bytes`: when it is over, remove the least recently used
    thumbnails (oldest mtime: made or last marked used) until it is under 90 % of it. Returns how
    many were removed. One pass over the folder's entries (stat only, nothing is opened)."""
    entries: list[tuple[float, int, str]] = []
    total = 0
    if not thumbs_dir.is_dir():
        return 0
    for folder in os.scandir(thumbs_dir):
        if not folder.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(folder.path):
            if entry.is_file(follow_symlinks=False) and entry.name.endswith(".jpg"):
                stat = entry.stat(follow_symlinks=False)
                entries.append((stat.st_mtime, stat.st_size, entry.path))
                total += stat.st_size
    if total <= max_bytes:
        return 0
    removed = 0
    for _, size, path in sorted(entries):
        if total <= 0.9 * max_bytes:
            break
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        total -= size
        removed += 1
    return removed
