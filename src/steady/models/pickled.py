"""Tensor names and shapes of a PyTorch pickle checkpoint (.ckpt/.pt), read without torch and
without running anything in the file.

A checkpoint saved by ``torch.save`` is a zip archive: ``NAME/data.pkl`` is a pickle of the state
dict in which every tensor is a call ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, …)`` and every storage a persistent id that points at ``NAME/data/K`` in the archive. The
pickle is read here by an Unpickler whose ``find_class`` never imports anything: the tensor
rebuild functions become a stand-in that keeps ``size``, storages are never read, and every other
global (a Lightning callback, a numpy scalar) becomes an inert placeholder. So the few hundred
kilobytes of data.pkl describe a multi-gigabyte checkpoint, in the parent process, which never
imports torch; the same shape-based inspection as a .safetensors header follows
(steady.models.detect.info_from_shapes). Loading the weights is still the worker's, with
``torch.load(weights_only=True)`` and --allow-pickle; what that refuses is refused there.

The legacy (pre-zip, PyTorch < 1.6) format, a run of pickles whose fourth holds the state dict, is
read the same way. A1111's ``modules/safe.py`` checks pickles with the same kind of restricted
Unpickler over data.pkl.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from steady.errors import ModelError

Shapes = dict[str, tuple[int, ...]]

_MAX_PICKLE_BYTES = 64 * 1024 * 1024  # a real data.pkl is < 2 MB (SDXL with EMA weights)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
# The functions torch pickles a tensor (or a Parameter holding one) as; the shape is argument 2
# of the _rebuild_tensor family and inside argument 0 of the others.
_TENSOR_REBUILDS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"}
_WRAPPERS = {"_rebuild_parameter", "_rebuild_parameter_with_state"}


class _Tensor:
    """A tensor's shape, in place of the tensor."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape


class _Dict(dict):
    """collections.OrderedDict: a state dict pickles its ``_metadata`` attribute as state."""

    def __setstate__(self, state: Any) -> None:
        pass


class _Placeholder:
    """Any other global the pickle names: built, given state and called without doing anything."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Placeholder:
        return _Placeholder()

    def __setstate__(self, state: Any) -> None:
        pass


def _shape(size: Any) -> tuple[int, ...]:
    if not isinstance(size, (tuple, list)) or not all(isinstance(n, int) and n >= 0 for n in size):
        raise ValueError(f"a tensor's size is {size!r}")
    return tuple(size)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, *rest: Any) -> _Tensor:
    return _Tensor(_shape(size))


def _rebuild_wrapper(data: Any, *rest: Any) -> Any:
    return data  # a Parameter (or a tensor subclass): the tensor it wraps


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    return func(*args)  # torch._tensor._rebuild_from_type_v2: func is one of the stand-ins above


def _codecs_encode(text: Any, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as _codecs.encode(str, 'latin1'); only that is decoded."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError("unexpected _codecs.encode call")
    return text.encode("latin1")


class _ShapeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in _TENSOR_REBUILDS:
            return _rebuild_tensor
        if module == "torch._utils" and name in _WRAPPERS:
            return _rebuild_wrapper
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            return _rebuild_from_type
        if (module, name) == ("collections", "OrderedDict"):
            return _Dict
        if (module, name) == ("torch", "Size"):
            return tuple
        if (module, name) in (("builtins", "set"), ("__builtin__", "set")):
            return set
        if (module, name) == ("_codecs", "encode"):
            return _codecs_encode
        return _Placeholder  # never imported, never run

    def persistent_load(self, pid: Any) -> Any:
        return None  # a storage: its bytes are never read


def _unpickle(f: BinaryIO) -> Any:
    return _ShapeUnpickler(f).load()


def _zip_state(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = [i for i in archive.infolist() if i.filename.endswith("data.pkl") and i.filename.count("/") == 1]
        if len(names) != 1:
            raise ValueError("the archive has no single NAME/data.pkl (not a torch.save checkpoint)")
        if names[0].file_size > _MAX_PICKLE_BYTES:
            raise ValueError(f"data.pkl is {names[0].file_size} bytes; a checkpoint's is a few megabytes")
        return _unpickle(io.BytesIO(archive.read(names[0])))


def _legacy_state(path: Path) -> Any:
    with open(path, "rb") as f:
        if _unpickle(f) != _LEGACY_MAGIC:
            raise ValueError("neither a zip archive nor a legacy torch.save file")
        _unpickle(f)  # protocol version
        _unpickle(f)  # sys_info
        return _unpickle(f)


def pickle_shapes(path: Path) -> Shapes:
    """{tensor name: shape} of a pickle checkpoint's state dict (``state_dict`` unwrapped, as the
    loader does), or ModelError naming `model` when it cannot be read as one."""
    state = _state(path)
    return {k: v.shape for k, v in state.items() if isinstance(k, str) and isinstance(v, _Tensor)}


def pickle_tree_shapes(path: Path) -> Shapes:
    """As pickle_shapes, with the tensors of nested dicts too, their names joined by dots: an
    A1111 embedding's ``string_to_param.*`` (a dict of tensors inside the state dict)."""
    out: Shapes = {}

    def walk(node: dict[Any, Any], prefix: str, depth: int) -> None:
        for key, value in node.items():
            if not isinstance(key, str):
                continue
            if isinstance(value, _Tensor):
                out[prefix + key] = value.shape
            elif isinstance(value, dict) and depth < 4:
                walk(value, prefix + key + ".", depth + 1)

    walk(_state(path), "", 0)
    return out


def _state(path: Path) -> dict[Any, Any]:
    try:
        state = _zip_state(path) if zipfile.is_zipfile(path) else _legacy_state(path)
    except OSError as exc:
        raise ModelError("model", str(path), f"cannot read file: {exc.strerror or exc}") from exc
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, struct.error, RecursionError, UnicodeDecodeError) as exc:  # fmt: skip
        raise ModelError("model", str(path), f"cannot read the pickle checkpoint ({type(exc).__name__}: {exc}); "
                                             "corrupt or truncated?") from exc  # fmt: skip
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError("model", str(path), "the pickle does not hold a state dict")
    return state
