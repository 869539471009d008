"""Serving the files the catalog records: only regular files, never through a symlink, only inside
the catalog's folders, checked on the file as it is opened (not on a name that may change after).

    handle = open_recorded(path, folders(cfg))     # None: not servable (missing, a link, elsewhere)
    return stream(handle, "image/png", headers)

A file is served when
1. its last component is not a symlink (opened with O_NOFOLLOW) and it is a regular file (fstat
   of the open descriptor: not a FIFO, a device or a folder; O_NONBLOCK so a FIFO cannot hang the
   open);
2. its real path names the very file that was opened (same device and inode), and that real path
   is inside one of the studio's folders (outputs, trash, thumbnails; each resolved), or, for a
   file recorded elsewhere (an imported folder, `steady generate --out`), is exactly the path the
   catalog records: imports record real paths, so no component of it may have become a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from starlette.responses import StreamingResponse

from steady.config import Settings

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def folders(cfg: Settings) -> tuple[Path, ...]:
    """The studio's own folders, as real paths (STEADY_HOME may itself be under a symlink)."""
    return tuple(Path(os.path.realpath(p)) for p in (cfg.outputs_dir, cfg.trash_dir, cfg.thumbs_dir))


def open_recorded(path: str | os.PathLike[str], roots: Sequence[Path], exact_elsewhere: bool = True) -> BinaryIO | None:
    """``path`` opened for reading if it may be served (see the module docstring), else None."""
    try:
        fd = os.open(path, _FLAGS)
    except (OSError, ValueError):  # missing, a symlink (ELOOP), unreadable, or a NUL in the name
        return None
    try:
        opened = os.fstat(fd)
        real = os.path.realpath(path)
        now = os.stat(real, follow_symlinks=False)
    except OSError:
        os.close(fd)
        return None
    same = (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)
    inside = any(_within(real, root) for root in roots)
    exact = exact_elsewhere and real == os.path.abspath(path)
    if not (stat.S_ISREG(opened.st_mode) and same and (inside or exact)):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def stream(handle: BinaryIO, media_type: str, headers: dict[str, str]) -> StreamingResponse:
    """A response that sends the open file in 64 KiB blocks and closes it when done."""
    size = os.fstat(handle.fileno()).st_size

    def blocks() -> Iterator[bytes]:
        with handle:
            while block := handle.read(1 << 16):
                yield block

    return StreamingResponse(blocks(), media_type=media_type, headers={**headers, "Content-Length": str(size)})


def _within(real: str, root: Path) -> bool:
    return real == str(root) or real.startswith(str(root).rstrip(os.sep) + os.sep)
