"""Model hashes, as A1111 shows them, computed once per file version.

Single file: sha256 of the whole file; the short hash is its first 10 hex digits (A1111's
"Model hash" since 1.x, e.g. SD 1.5 pruned-emaonly = 6ce0161689).

Diffusers folder (A1111 has no hash for these; ours): sha256 over the bytes of its weight files
(*.safetensors, *.bin, *.ckpt, *.pt, *.pth, any depth), concatenated in sorted order of their
'/'-separated path relative to the folder. File names themselves are not hashed, so the hash
of a folder changes exactly when a weight changes.

LoRA (A1111's "Lora hashes", kohya's and Civitai's "AutoV3"): for a .safetensors file, the sha256
of its tensor data only, the bytes after the 8-byte header length and the JSON header, so that
editing the file's metadata does not change it (``tensor_data_sha256``).

Hashing a 4 GB file takes tens of seconds, so results are cached in <cache_dir>/hashes.json,
keyed by absolute path and stamped with size + mtime_ns (for a folder: of every weight file);
a changed stamp means hash again. The cache is rewritten atomically (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from steady.config import Settings
from steady.errors import ModelError

WEIGHT_EXT = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
CACHE_NAME = "hashes.json"
_CHUNK = 1 << 20


def _weight_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in WEIGHT_EXT]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _stamp(path: Path) -> str:
    if path.is_dir():
        parts = [f"{p.relative_to(path).as_posix()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in _weight_files(path)]
        return "dir:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _sha256_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def cache_path(settings: Settings) -> Path:
    return settings.cache_dir / CACHE_NAME


def _load_cache(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hashes-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(path: str | Path, settings: Settings) -> str:
    """Full sha256 (hex) of a model file or diffusers folder, from the cache when still valid."""
    return _cached(path, settings, "", lambda p: _sha256_files(_weight_files(p) if p.is_dir() else [p]))


def tensor_data_sha256(path: str | Path, settings: Settings, argument: str = "model") -> str:
    """sha256 (hex) of a .safetensors file's tensor data: the bytes after the 8-byte header length
    and the header (kohya's ``addnet_hash_safetensors``, which A1111 uses for LoRAs), cached."""
    return _cached(path, settings, "tensors:", _sha256_after_header, argument)


def _sha256_after_header(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8).ljust(8, b"\0"))
        fh.seek(8 + length)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cached(path: str | Path, settings: Settings, kind: str, compute: Callable[[Path], str], argument: str = "model") -> str:
    """``compute(path)``, from the cache under ``kind + path`` while the file's stamp is the same."""
    p = Path(path).expanduser()
    try:
        p = p.resolve(strict=True)
        stamp = _stamp(p)
    except OSError as e:
        raise ModelError(argument, str(path), f"cannot read: {e.strerror or e}") from e
    cfile = cache_path(settings)
    key = kind + str(p)
    entry = _load_cache(cfile).get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and entry.get("sha256"):
        return entry["sha256"]
    try:
        digest = compute(p)
    except OSError as e:
        raise ModelError(argument, str(path), f"cannot read: {e.strerror or e}") from e
    data = _load_cache(cfile)  # re-read: another process may have added entries meanwhile
    data[key] = {"stamp": stamp, "sha256": digest}
    _save_cache(cfile, data)
    return digest


def short_hash(path: str | Path, settings: Settings) -> str:
    """A1111's short model hash: the first 10 hex digits of the sha256."""
    return sha256(path, settings)[:10]
