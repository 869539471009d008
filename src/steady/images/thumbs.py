"""Thumbnails, made once per image and size, cached on disk, written atomically.

    path = thumbnail(source_png, settings().thumbs_dir, image_id=42, size=256)

A thumbnail is a JPEG (small, fast to decode in the browser) at most `size` pixels on its long
side, named by image id and size and sharded into 256 folders; it is remade when the source is
newer. The source is a path or a file already open for reading (the web server opens it itself,
to check what it opened). Decoding keeps Pillow's decompression-bomb limit: a bomb raises BadInput.
Pixels are released as soon as the thumbnail is written, so serving thousands keeps memory flat.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from steady.errors import BadInput

SIZES = (128, 256, 512)


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
        if target.stat().st_mtime >= source_mtime:
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
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            rgb.save(handle, format="JPEG", quality=85, optimize=True)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
