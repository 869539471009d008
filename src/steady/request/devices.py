"""Which device and dtype a job runs on, decided without importing torch.

The supervising process (CLI, server) must stay free of torch: importing it costs hundreds of MiB
of RSS and, with CUDA, a driver context that is never given back. So "auto" is resolved from
what torch was built for (read from `torch/version.py` as text, not imported) and what the
machine has (device files on Linux; a short child process elsewhere), and the worker, which
imports torch anyway, confirms the device when it loads the model (`confirm_device`).

    device = choose_device("auto")            # "cuda", "mps" or "cpu"
    dtype = choose_dtype("auto", device, native_bf16())   # "float16" on GPUs; "bfloat16" on a CPU with native bf16
"""

from __future__ import annotations

import ast
import importlib.util
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from steady.errors import BadInput
from steady.params import BACKENDS

GPU_PROBE_TIMEOUT_S = 60


@dataclass(frozen=True)
class TorchBuild:
    """What the installed torch was built for, from its version file."""

    version: str | None  # None: torch is not installed
    cuda: str | None = None  # CUDA version of the build; None on CPU-only and ROCm builds
    hip: str | None = None  # ROCm/HIP version of a ROCm build

    @property
    def gpu(self) -> bool:
        return bool(self.cuda or self.hip)


def torch_build(version_file: Path | None = None) -> TorchBuild:
    """Read `torch/version.py` (plain assignments) without importing torch."""
    path = version_file
    if path is None:
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.submodule_search_locations:
            return TorchBuild(version=None)
        path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return TorchBuild(version="unknown")
    values: dict[str, object] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
            values[target.id] = value.value
    text = {k: v if isinstance(v, str) else None for k, v in values.items()}
    return TorchBuild(version=text.get("__version__") or "unknown", cuda=text.get("cuda"), hip=text.get("hip"))


def _gpu_present(build: TorchBuild) -> bool:
    """Whether a GPU this torch build can drive is there. Linux: the driver's device files.
    Elsewhere: ask torch in a short child process (the parent stays free of it)."""
    if sys.platform.startswith("linux"):
        if build.hip:
            return Path("/dev/kfd").exists()
        gpus = Path("/proc/driver/nvidia/gpus")
        return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()
    code = "import torch, sys; sys.stdout.write('1' if torch.cuda.is_available() else '0')"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=GPU_PROBE_TIMEOUT_S, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "1"


def mps_possible() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def choose_device(device: str) -> str:
    """'auto' picks CUDA (or ROCm, which torch also calls "cuda"), then Apple MPS, then the CPU.
    An explicit device must be one this torch build can drive."""
    build = torch_build()
    if device == "auto":
        if build.gpu and _gpu_present(build):
            return "cuda"
        return "mps" if mps_possible() else "cpu"
    if device.startswith("cuda"):
        if not build.gpu:
            raise BadInput("device", device, f"this torch build ({build.version}) has no CUDA support")
        if not _gpu_present(build):
            raise BadInput("device", device, "no CUDA device is available to this torch build")
    if device == "mps" and not mps_possible():
        raise BadInput("device", device, "Apple MPS is not available on this machine")
    return device


def choose_dtype(dtype: str, device: str, cpu_bf16: bool | None = None) -> str:
    """'auto': half precision on GPUs (half the memory); on the CPU bfloat16 where the CPU has
    native bfloat16 instructions (``cpu_bf16``: `native_bf16()`; None, unknown, counts as no),
    else float32 (fp16 is slow on CPUs, and bf16 without native support converts inside every
    operation)."""
    if dtype == "auto":
        if device != "cpu":
            return "float16"
        return "bfloat16" if cpu_bf16 else "float32"
    if dtype == "float16" and device == "cpu":
        raise BadInput("dtype", dtype, "float16 is not supported for generation on the CPU; use float32 or bfloat16")
    return dtype


def openvino_installed() -> bool:
    """Whether the optional OpenVINO backend can be used (found, not imported: it is large)."""
    return importlib.util.find_spec("openvino") is not None


def choose_backend(backend: str, device: str, where: str = "") -> str:
    """The UNet's backend for a job on ``device``: ``backend`` checked (steady.params.BACKENDS),
    or BadInput naming it. ``where``: the config file it came from, when it did not come from the
    request."""
    said = f" (the backend setting in {where})" if where else ""
    if backend not in BACKENDS:
        raise BadInput("backend", backend, f"must be one of {', '.join(BACKENDS)}{said}")
    if backend == "openvino":
        if device != "cpu":
            raise BadInput("backend", backend, f"runs on the CPU only, and this job runs on {device}{said}; "
                                               "use --device cpu or --backend torch")  # fmt: skip
        if not openvino_installed():
            raise BadInput("backend", backend, f"needs the openvino package, which is not installed{said}: "
                                               "pip install 'steady[openvino]', or use --backend torch")  # fmt: skip
    return backend


def backend_reason(backend: str) -> str:
    """What `steady doctor` says of the UNet's backend here (``backend``: config.toml's setting)."""
    have = "installed" if openvino_installed() else "not installed (pip install 'steady[openvino]')"
    if backend == "torch":
        return f"torch (the default; --backend openvino, or backend = \"openvino\" in config.toml: OpenVINO is {have})"
    return f"{backend} (config.toml's backend setting); OpenVINO is {have}"


def dtype_reason(dtype: str, device: str, cpu_bf16: bool | None = None) -> str:
    """Why `--dtype auto` picks what it picks here, in a line (`steady doctor` prints it)."""
    chosen = choose_dtype(dtype, device, cpu_bf16)
    if dtype != "auto":
        return f"{chosen}: asked for"
    if device != "cpu":
        return f"{chosen}: half the memory of float32 on a GPU"
    if chosen == "bfloat16":
        return ("bfloat16: this CPU has native bfloat16 (AVX512-BF16/AMX or Arm BF16); the networks run in "
                "bfloat16 (channels_last), the latents and the sampler in float32")
    return "float32: this CPU has no native bfloat16 instructions (bfloat16 would convert in every operation)"


def native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Native bfloat16 from /proc/cpuinfo's flags (None: unknown, e.g. not Linux). Without it torch
    still runs bfloat16 on the CPU, converting to float32 inside each operation: correct, and half
    the memory, but slower."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    words = set(cpuinfo.split())
    if words & {"avx512_bf16", "amx_bf16"}:
        return True
    if "Features" in cpuinfo and "bf16" in words:  # Arm
        return True
    return False
