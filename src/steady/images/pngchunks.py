"""A PNG's text chunks read one by one, for the files Pillow refuses as a whole.

Pillow stops at the first chunk it cannot decode (a zTXt with an unknown compression method, a
bad checksum in a critical chunk), which makes a PNG whose metadata another tool damaged "not
an image". steady.images.pngmeta then walks the chunks here: each tEXt, zTXt and iTXt that
decodes is kept, each that does not is passed over with a warning. Pixels are never decoded and
a compressed chunk never inflates past MAX_TEXT_BYTES.

Chunk layout (PNG spec, 11.3.4): length (4 bytes, big-endian), type (4), data (length), CRC (4).
    tEXt  keyword NUL text                                   (Latin-1)
    zTXt  keyword NUL method(0) zlib-data                    (Latin-1)
    iTXt  keyword NUL flag method language NUL translated-keyword NUL text   (UTF-8, zlib if flag)
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_BYTES = 16 * 1024 * 1024  # one chunk's text, inflated (Pillow's own limit is 1 MiB per chunk)
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")


@dataclass
class Chunks:
    text: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_text_chunks_by_hand(path: str) -> Chunks:
    """The text chunks that decode, and a warning for each that does not (and for the walk
    ending early). Raises OSError only when the file cannot be opened or read."""
    out = Chunks()
    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            out.warnings.append("no PNG signature")
            return out
        while True:
            header = f.read(8)
            if len(header) < 8:
                out.warnings.append("the file ends before its end chunk (truncated)")
                return out
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                return out
            if kind not in _TEXT_TYPES or length > MAX_TEXT_BYTES:
                f.seek(length + 4, 1)  # the data and the CRC
                continue
            data, crc = f.read(length), f.read(4)
            if len(data) < length or len(crc) < 4:
                out.warnings.append(f"{kind.decode()} chunk cut off (truncated file)")
                return out
            label = kind.decode()
            if struct.unpack(">I", crc)[0] != zlib.crc32(kind + data):
                out.warnings.append(f"{label} chunk has a bad checksum; read anyway")
            try:
                key, value = _decode(kind, data)
            except (ValueError, zlib.error) as exc:
                out.warnings.append(f"{label} chunk cannot be decoded ({exc}); passed over")
                continue
            out.text.setdefault(key, value)


def _decode(kind: bytes, data: bytes) -> tuple[str, str]:
    key, sep, rest = data.partition(b"\0")
    if not sep or not 1 <= len(key) <= 79:
        raise ValueError("its keyword is missing or longer than 79 bytes")
    name = key.decode("latin-1")
    if kind == b"tEXt":
        return name, rest.decode("latin-1")
    if kind == b"zTXt":
        if rest[:1] != b"\0":
            raise ValueError(f"unknown compression method {rest[:1]!r}")
        return name, _inflate(rest[1:]).decode("latin-1")
    if len(rest) < 2:
        raise ValueError("it is too short")
    compressed, method = rest[0], rest[1]
    _language, sep1, rest = rest[2:].partition(b"\0")
    _translated, sep2, text = rest.partition(b"\0")
    if not (sep1 and sep2):
        raise ValueError("its language or translated keyword is not terminated")
    if compressed:
        if method != 0:
            raise ValueError(f"unknown compression method {method}")
        text = _inflate(text)
    return name, text.decode("utf-8")  # UnicodeDecodeError is a ValueError


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"it inflates past {MAX_TEXT_BYTES} bytes")
    return out
