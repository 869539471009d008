"""A single file loads straight to the target dtype, tensor by tensor: an fp16 file asked for in
bfloat16 never holds a component in fp16 beside its bf16 weights, and never makes an fp32 copy.

Every tensor an operation takes or makes during the load is watched (a TorchDispatchMode): the
fp16 ones that are alive at once, and any large fp32 one. The full-size figures (peak RSS against
resident) are in docs/benchmarks.md.
"""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from steady.models.detect import inspect_model, read_safetensors_header
from steady.worker.loader import load_pipeline
from steady.worker.tensorfile import SafetensorsReader


class Watch(TorchDispatchMode):
    """The most bytes of each watched dtype alive at once in CPU tensors an operation takes or makes
    (views of one buffer count once)."""

    def __init__(self, *dtypes: torch.dtype):
        super().__init__()
        self.live = dict.fromkeys(dtypes, 0)
        self.most = dict.fromkeys(dtypes, 0)
        self.seen: set[int] = set()  # the tensor objects watched
        self.storages: dict[int, list] = {}  # storage address -> [tensors alive on it, bytes, dtype]

    def _gone(self, key: int, address: int) -> None:
        self.seen.discard(key)
        entry = self.storages[address]
        entry[0] -= 1
        if entry[0] == 0:
            self.live[entry[2]] -= entry[1]
            del self.storages[address]

    def _note(self, t: torch.Tensor) -> None:
        if t.device.type != "cpu" or t.dtype not in self.live or id(t) in self.seen:
            return
        storage = t.untyped_storage()
        address = storage.data_ptr()
        if address not in self.storages:
            self.storages[address] = [0, storage.nbytes(), t.dtype]
            self.live[t.dtype] += storage.nbytes()
            self.most[t.dtype] = max(self.most[t.dtype], self.live[t.dtype])
        self.storages[address][0] += 1
        self.seen.add(id(t))
        weakref.finalize(t, self._gone, id(t), address)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor):
                self._note(t)
        return out


@pytest.fixture(scope="module")
def fp16_file(tmp_path_factory):
    from tests.fixtures.export import save_single_file
    from tests.fixtures.tiny_models import make_tiny_pipeline

    return save_single_file(make_tiny_pipeline("sd1"), tmp_path_factory.mktemp("lean") / "tiny-fp16.safetensors",
                            "sd1", dtype=torch.float16)  # fmt: skip


def test_an_fp16_file_loads_to_bfloat16_one_tensor_at_a_time(fp16_file):
    header = read_safetensors_header(fp16_file)
    sizes = [b - a for k, v in header.items() if k != "__metadata__" for a, b in [v["data_offsets"]]]
    watch = Watch(torch.float16, torch.float32)
    with watch:
        pipe = load_pipeline(inspect_model(fp16_file), "cpu", torch.bfloat16)
    for name in ("unet", "vae", "text_encoder"):
        floats = {p.dtype for p in getattr(pipe, name).parameters()}
        assert floats == {torch.bfloat16}, name
    # At most one tensor of the file's fp16 is alive at a time (the largest is the token embedding;
    # a whole component read before conversion would be several times that).
    assert 0 < watch.most[torch.float16] <= max(sizes), (watch.most, max(sizes), sum(sizes))
    # No fp32 copy on the way from fp16 to bf16: at most one tensor's worth of fp32 at a time (the
    # uninitialised weight a module's constructor makes before diffusers moves it to the meta device).
    assert watch.most[torch.float32] <= 2 * max(sizes), (watch.most, max(sizes))


def test_the_reader_gives_the_files_tensors(fp16_file):
    from safetensors.torch import load_file

    expected = load_file(fp16_file)
    reader = SafetensorsReader(fp16_file)
    try:
        assert set(reader.keys()) == set(expected)
        for key in list(expected)[:50]:
            assert torch.equal(reader.get(key), expected[key]), key
            cast = reader.get(key, torch.bfloat16)
            assert cast.dtype == torch.bfloat16 and torch.equal(cast, expected[key].to(torch.bfloat16))
    finally:
        reader.close()
