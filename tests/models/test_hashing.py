"""A1111 short hash, folder hash, and the hash cache (a file is hashed once per version)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from steady.config import settings
from steady.errors import ModelError
from steady.models import hashing


def test_short_hash_is_a1111s(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(os.urandom(3 * (1 << 20) + 17))  # more than one read chunk
    full = hashlib.sha256(path.read_bytes()).hexdigest()
    assert hashing.sha256(path, settings()) == full
    assert hashing.short_hash(path, settings()) == full[:10]


def test_cache_is_used_then_invalidated_by_mtime(tmp_path):
    s = settings()
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"weights")
    real = hashing.sha256(path, s)
    cache = hashing.cache_path(s)
    data = json.loads(cache.read_text())
    assert data[str(path.resolve())]["sha256"] == real
    # Prove the second call does not read the file: plant a different value in the cache.
    data[str(path.resolve())]["sha256"] = "f" * 64
    cache.write_text(json.dumps(data))
    assert hashing.short_hash(path, s) == "f" * 10
    # Same size, new content and mtime: hashed again.
    path.write_bytes(b"WEIGHTS")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert hashing.sha256(path, s) == hashlib.sha256(b"WEIGHTS").hexdigest()
    assert not list(cache.parent.glob(".hashes-*"))  # no temp files left behind


def test_folder_hash_covers_weight_files_in_sorted_order(tmp_path):
    folder = tmp_path / "pipe"
    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"U")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"V")
    (folder / "unet" / "config.json").write_text("{}")  # configs are not weights
    assert hashing.sha256(folder, settings()) == hashlib.sha256(b"UV").hexdigest()
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"W")
    assert hashing.sha256(folder, settings()) == hashlib.sha256(b"UW").hexdigest()


def test_corrupt_cache_is_ignored_and_missing_file_errors(tmp_path):
    s = settings()
    cache = hashing.cache_path(s)
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    path = tmp_path / "m.ckpt"
    path.write_bytes(b"x")
    assert hashing.sha256(path, s) == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ModelError) as e:
        hashing.short_hash(tmp_path / "gone.safetensors", s)
    assert e.value.argument == "model"
