"""A .ckpt/.pt pickle goes through the same inspection as a .safetensors file: its tensor shapes are
read from data.pkl without torch and without running anything in it (steady.models.pickled)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from steady.errors import ModelError
from steady.models.detect import inspect_model
from steady.models.pickled import pickle_shapes
from tests.fixtures.tiny_models import save_tiny_single_file


class Callback:
    """Stands for what training checkpoints carry beside the weights (Lightning callbacks)."""

    def __init__(self):
        self.best = torch.tensor(0.5)


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['STEADY_PICKLE_MARKER']}",))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_single_file("sdxl", tmp_path_factory.mktemp("st") / "m.safetensors")
    return path, load_file(path)


@pytest.mark.parametrize("layout", ["state_dict", "bare", "parameters", "legacy"])
def test_a_pickle_is_inspected_like_its_safetensors(tmp_path, tiny, layout):
    path, tensors = tiny
    ckpt = tmp_path / "m.ckpt"
    if layout == "state_dict":  # what SD checkpoints hold: {"state_dict": ..., "global_step": ...}
        torch.save({"state_dict": tensors, "global_step": 3, "callbacks": {"cb": Callback()}}, ckpt)
    elif layout == "bare":
        torch.save(tensors, ckpt)
    elif layout == "parameters":  # a module's state_dict(): an OrderedDict with _metadata, Parameters
        module = torch.nn.Module()
        for i, (k, v) in enumerate(tensors.items()):
            module.register_parameter(f"p{i}", torch.nn.Parameter(v, requires_grad=False))
        state = module.state_dict(keep_vars=True)
        renamed = type(state)((k, state[f"p{i}"]) for i, k in enumerate(tensors))
        renamed._metadata = getattr(state, "_metadata", {})
        torch.save({"state_dict": renamed}, ckpt)
    else:  # the pre-zip format of PyTorch < 1.6
        torch.save({"state_dict": tensors}, ckpt, _use_new_zipfile_serialization=False)
    info, reference = inspect_model(ckpt), inspect_model(path)
    assert (info.format, info.name, info.size_bytes) == ("pickle", "m", ckpt.stat().st_size)
    assert (info.arch, info.prediction_type, info.native_size, info.overrides) == (
        reference.arch, reference.prediction_type, reference.native_size, reference.overrides)
    assert pickle_shapes(ckpt) == {k: tuple(v.shape) for k, v in tensors.items()}


def test_nothing_in_the_pickle_is_run(tmp_path, tiny, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("STEADY_PICKLE_MARKER", str(marker))
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": tiny[1], "x": Exploit()}, ckpt)
    assert inspect_model(ckpt).arch == "sdxl"
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "not a state dict", "no tensors", "garbage"])
def test_a_damaged_pickle_is_one_model_error(tmp_path, tiny, damage):
    ckpt = tmp_path / "bad.ckpt"
    if damage == "truncated":
        torch.save({"state_dict": tiny[1]}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "not a state dict":
        torch.save([1, 2, 3], ckpt)
    elif damage == "no tensors":
        torch.save({"state_dict": {"a": 1}}, ckpt)
    else:
        ckpt.write_bytes(b"\x80\x04not a pickle at all" * 10)
    with pytest.raises(ModelError) as e:
        inspect_model(ckpt)
    assert e.value.argument == "model" and "\n" not in str(e.value)


def test_inspecting_a_pickle_does_not_import_torch(tmp_path, tiny):
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": tiny[1]}, ckpt)
    code = ("import sys; from steady.models.detect import inspect_model; print(inspect_model(sys.argv[1]).arch);"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["sdxl", "[]"]


def test_allow_pickle_generates_and_records_a_checkpoint(tmp_path, capsys):
    """The defect: a .ckpt with --allow-pickle failed in the memory estimate, or wrote its PNG and
    then failed to record it (no architecture)."""
    from steady.catalog import open_catalog
    from steady.config import settings
    from tests.fixtures.cli import run_main

    tensors = load_file(save_tiny_single_file("sd1", tmp_path / "m.safetensors"))
    ckpt = tmp_path / "old.ckpt"
    torch.save({"state_dict": tensors, "global_step": 1}, ckpt)
    code, out = run_main(["generate", "a red circle", "-m", str(ckpt), "--allow-pickle", "-W", "32", "-H", "32",
                          "--steps", "1", "--seed", "5", "-q"], capsys)  # fmt: skip
    assert code == 0, out.err
    with open_catalog(settings().db_path).reading() as conn:
        rows = conn.execute("SELECT model_arch, path FROM images").fetchall()
    assert len(rows) == 1 and rows[0][0] == "sd1" and os.path.exists(rows[0][1])
