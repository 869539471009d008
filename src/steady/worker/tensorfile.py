"""Read a .safetensors file one tensor at a time, straight into the dtype it will be used in.
Part of the worker (torch).

safetensors' own ``safe_open`` memory-maps the whole file: every page a tensor was read from stays
in the process's resident set (as file-backed pages) until the file is closed, so loading a 2 GiB
checkpoint costs 2 GiB of RSS on top of the weights it becomes. Here each tensor's bytes are read
with one ``readinto`` into a buffer of its own (the page cache keeps the file, outside the
process), viewed as the file's dtype and cast to the target; only the tensor in hand exists twice.
The header is the one ``steady.models.detect.read_safetensors_header`` has already checked
(offsets inside the file, JSON well formed), so a damaged file is refused before any tensor is read.
"""

from __future__ import annotations

import struct
from pathlib import Path

import torch

from steady.errors import ModelError
from steady.models.detect import read_safetensors_header

# safetensors' dtype names (the format's spec) -> torch dtypes.
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        _DTYPES[_name] = getattr(torch, _attr)


def cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``tensor`` in ``dtype`` when it is floating point (integer tensors such as position ids
    keep theirs); the same tensor when nothing changes."""
    if dtype is None or not tensor.is_floating_point() or tensor.dtype == dtype:
        return tensor
    return tensor.to(dtype)


class SafetensorsReader:
    """The tensors of one .safetensors file, read on demand (not memory-mapped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        header = read_safetensors_header(self.path)
        self._entries = {k: v for k, v in header.items() if k != "__metadata__"}
        try:
            self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
            (length,) = struct.unpack("<Q", self._file.read(8))
        except (OSError, struct.error) as e:
            raise ModelError("model", str(self.path), f"cannot read: {e}") from e
        self._base = 8 + length
        unknown = sorted({e["dtype"] for e in self._entries.values()} - set(_DTYPES))
        if unknown:
            raise ModelError("model", str(self.path), f"tensors of dtype {unknown[0]} are not supported")

    def keys(self) -> list[str]:
        return list(self._entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._entries[key]["shape"])

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Tensor ``key``, cast to ``dtype`` (floating point only; None: the file's dtype)."""
        entry = self._entries[key]
        start, stop = entry["data_offsets"]
        buffer = torch.empty(stop - start, dtype=torch.uint8)
        view = memoryview(buffer.numpy()).cast("B")
        self._file.seek(self._base + start)
        done = 0
        while done < len(view):
            n = self._file.readinto(view[done:])
            if not n:
                raise ModelError("model", str(self.path), f"file ended inside tensor {key!r} (truncated?)")
            done += n
        tensor = buffer.view(_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        return cast(tensor, dtype)

    def close(self) -> None:
        self._file.close()


def pickled_state(path: str, allow_pickle: bool) -> object:
    """A ``.pt``/``.ckpt``/``.pth`` file's contents, loaded with ``torch.load(weights_only=True)``
    (tensors and plain containers only), with a wrapping ``state_dict`` taken off; ValueError
    unless the user allowed pickles (``--allow-pickle``; steady.request.check refuses them first)."""
    if not allow_pickle:
        raise ValueError(f"{path} is a pickle and --allow-pickle was not given")
    state = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return state
