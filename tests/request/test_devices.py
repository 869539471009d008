"""Device and dtype are chosen without importing torch in the supervising process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from steady.request.devices import TorchBuild, choose_device, choose_dtype, dtype_reason, native_bf16, torch_build
from steady.errors import BadInput


def test_torch_build_is_read_from_the_version_file_without_importing_torch() -> None:
    code = ("import sys; from steady.request.devices import torch_build; b = torch_build(); "
            "print(b.version, b.cuda, 'torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import torch

    assert out == [torch.__version__, str(torch.version.cuda), "False"]


def test_version_files_of_cuda_rocm_and_missing_builds(tmp_path: Path) -> None:
    cuda = tmp_path / "cuda.py"
    cuda.write_text("from typing import Optional\n__version__ = '2.5.1+cu124'\ncuda: Optional[str] = '12.4'\n"
                    "hip: Optional[str] = None\n")  # fmt: skip
    rocm = tmp_path / "rocm.py"
    rocm.write_text("__version__ = '2.5.1+rocm6.2'\ncuda = None\nhip = '6.2.41133'\n")
    assert torch_build(cuda) == TorchBuild("2.5.1+cu124", cuda="12.4", hip=None) and torch_build(cuda).gpu
    assert torch_build(rocm) == TorchBuild("2.5.1+rocm6.2", cuda=None, hip="6.2.41133") and torch_build(rocm).gpu
    assert torch_build(tmp_path / "absent.py") == TorchBuild("unknown")


def test_auto_is_the_cpu_here_and_explicit_devices_are_checked() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert choose_device("auto") == "cpu" and choose_device("cpu") == "cpu"
    with pytest.raises(BadInput) as info:
        choose_device("cuda:0")
    assert info.value.argument == "device" and "cuda:0" in str(info.value)
    if sys.platform != "darwin":
        with pytest.raises(BadInput, match="MPS"):
            choose_device("mps")


def test_dtype_rules() -> None:
    assert choose_dtype("auto", "cpu", cpu_bf16=False) == "float32" and choose_dtype("auto", "cuda") == "float16"
    assert choose_dtype("auto", "cpu", cpu_bf16=True) == "bfloat16"  # native bf16: the networks in bf16
    assert choose_dtype("auto", "cpu", cpu_bf16=None) == "float32"  # unknown: the safe choice
    assert choose_dtype("bfloat16", "cpu") == "bfloat16"
    assert "no native bfloat16" in dtype_reason("auto", "cpu", cpu_bf16=False)
    assert dtype_reason("auto", "cpu", cpu_bf16=True).startswith("bfloat16: this CPU has native bfloat16")
    with pytest.raises(BadInput) as info:
        choose_dtype("float16", "cpu")
    assert info.value.argument == "dtype"


HOOK = """
import sys
from steady.cli import main
if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        assert not exc.code, exc.code
    heavy = sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)
    print("HEAVY", ",".join(heavy) or "none")
"""


def test_the_cli_process_never_imports_torch_the_worker_does(tmp_path: Path) -> None:
    """Issue "hours without a hang": only the worker imports torch/diffusers/transformers."""
    script = tmp_path / "run_cli.py"
    script.write_text(HOOK)
    env = {**os.environ, "STEADY_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, str(script), "generate", "a red circle", "-n", "1", "--steps", "2", "--out",
            str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HEAVY none" in done.stdout, done.stdout[-2000:]
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


def test_native_bf16_from_cpu_flags() -> None:
    assert native_bf16("flags : fpu avx512f avx512_bf16 amx_tile") is True
    assert native_bf16("flags : fpu sse avx2 fma") is False
    assert native_bf16("Features : fp asimd bf16 i8mm") is True  # Arm
