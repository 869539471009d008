"""Images a generation starts from (init images, masks): checked, then stored by their sha256.

    stored = store_bytes(data, cfg.inputs_dir, "init_image")    # an upload: checked, kept once
    pending = checked_file("photo.jpg", cfg.inputs_dir, "init_image")  # checked; pending.keep() writes it
    stored = find_stored("sha256:<hex>", cfg.inputs_dir, "init_image")

Whatever way an image comes in (a file on the CLI, base64 in an A1111 request, an upload to our
API, a catalog image), it is decoded once here, refused with BadInput naming the argument when it
is not an image (or is a decompression bomb, or too large), and written atomically to
``STEADY_HOME/inputs/<sha256>.<ext>``, its bytes unchanged. The worker is told that path (a
steady.params.Source), never the pixels; the sha256 is the catalog's ``content_hash`` of the file
it came from, which is how an image's lineage is found.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from steady.errors import BadInput, OutputError

MAX_INPUT_BYTES = 48 << 20  # a 16-megapixel PNG with little compression
MAX_INPUT_PIXELS = 4096 * 4096  # the largest size a generation may have (steady.params.MAX_SIDE squared)
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
_REFERENCE = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class StoredImage:
    """An input image in the inputs folder (or checked and about to be: ``data`` until ``keep``):
    its path, sha256 and size."""

    path: str
    sha256: str
    width: int
    height: int
    data: bytes = b""  # the bytes still to write (``keep``); b"" once stored

    def keep(self) -> StoredImage:
        """Write the checked bytes to ``path`` (atomically, once), or raise OutputError."""
        if self.data and not Path(self.path).is_file():
            _write(Path(self.path), self.data)
        return StoredImage(self.path, self.sha256, self.width, self.height)


def check_image(data: bytes, argument: str, shown: str) -> tuple[str, int, int]:
    """The format, width and height of ``data``, or BadInput naming ``argument`` (with ``shown``
    as its value) when it is not an image this studio reads, or is too large."""
    from PIL import Image

    if len(data) > MAX_INPUT_BYTES:
        raise BadInput(argument, shown, f"is {len(data) / 2**20:.1f} MiB; at most {MAX_INPUT_BYTES >> 20} MiB are taken")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height, kind = image.width, image.height, image.format or ""
            if width * height > MAX_INPUT_PIXELS:
                raise BadInput(argument, shown, f"is {width}x{height} pixels; at most {MAX_INPUT_PIXELS:,} pixels "
                                                "(4096x4096) are taken (a decompression bomb is refused unread)")  # fmt: skip
            image.load()  # decode it all: a truncated or corrupt file is refused now, not in the worker
    except BadInput:
        raise
    except Image.DecompressionBombError as exc:
        raise BadInput(argument, shown, f"is a decompression bomb ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInput(argument, shown, f"is not an image steady can read ({exc})") from None
    if kind not in _FORMATS:
        raise BadInput(argument, shown, f"is a {kind or 'unknown'} image; give PNG, JPEG, WebP, BMP, GIF or TIFF")
    if width < 8 or height < 8:
        raise BadInput(argument, shown, f"is {width}x{height} pixels; at least 8x8 are needed")
    return kind, width, height


def checked_bytes(data: bytes, inputs_dir: Path, argument: str, shown: str = "") -> StoredImage:
    """``data`` checked (BadInput naming ``argument``), with the path it is kept at in
    ``inputs_dir``; nothing is written until ``keep()``."""
    shown = shown or f"<{len(data):,} bytes>"
    kind, width, height = check_image(data, argument, shown)
    digest = hashlib.sha256(data).hexdigest()
    return StoredImage(str(inputs_dir / f"{digest}{_FORMATS[kind]}"), digest, width, height, data)


def store_bytes(data: bytes, inputs_dir: Path, argument: str, shown: str = "") -> StoredImage:
    """Check ``data`` and keep it in ``inputs_dir`` under its sha256 (once: the same bytes are
    the same file). Raises BadInput, or OutputError when the folder cannot be written."""
    return checked_bytes(data, inputs_dir, argument, shown).keep()


def _write(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".steady-input-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
    except OSError as exc:
        raise OutputError("inputs", str(target.parent), f"cannot keep the input image there ({exc.strerror or exc})") from exc


def checked_file(path: str | os.PathLike[str], inputs_dir: Path, argument: str) -> StoredImage:
    """Read the image file at ``path`` and check it (checked_bytes); BadInput naming ``argument``
    when it is missing, not a file, too large or not an image. Nothing is written until ``keep()``."""
    p = Path(path).expanduser()
    try:
        if not p.is_file():
            raise BadInput(argument, str(path), "no such file" if not p.exists() else "is not a file")
        if p.stat().st_size > MAX_INPUT_BYTES:
            raise BadInput(argument, str(path), f"is {p.stat().st_size / 2**20:.1f} MiB; at most "
                                                f"{MAX_INPUT_BYTES >> 20} MiB are taken")  # fmt: skip
        data = p.read_bytes()
    except OSError as exc:
        raise BadInput(argument, str(path), f"cannot be read ({exc.strerror or exc})") from None
    return checked_bytes(data, inputs_dir, argument, str(path))


def is_reference(value: str) -> bool:
    """True for 'sha256:<64 hex digits>' (a stored input) and 'image:<id>' (a catalog image)."""
    return bool(_REFERENCE.fullmatch(value)) or (value.startswith("image:") and value[6:].isdigit())


def find_stored(reference: str, inputs_dir: Path, argument: str) -> StoredImage:
    """The stored input a 'sha256:<hex>' reference names, or BadInput naming ``argument``."""
    match = _REFERENCE.fullmatch(reference)
    if not match:
        raise BadInput(argument, reference, "must be a path, 'sha256:' and 64 hex digits, or 'image:' and an image id")
    digest = match.group(1)
    for suffix in dict.fromkeys(_FORMATS.values()):
        candidate = inputs_dir / f"{digest}{suffix}"
        if candidate.is_file():
            stored = checked_file(candidate, inputs_dir, argument)  # checked again: the folder is the user's
            if stored.sha256 != digest:
                raise BadInput(argument, reference, f"the stored file {candidate.name} no longer has that hash")
            return stored.keep()
    raise BadInput(argument, reference, "no input image with that hash (upload it first: POST /api/inputs)")
