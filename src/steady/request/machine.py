"""What this machine has: CPU cores, RAM, swap (or the Windows paging file), GPUs and their VRAM.

    probe_machine() -> Machine          # everything, as one dataclass; nothing cached
    machine_warnings(machine) -> [str]  # what matters on small machines (`steady doctor` prints them)

Nothing is probed at import time, and torch is never imported here: this runs in the CLI and
server processes, where `torch.cuda.mem_get_info` would create a CUDA context that holds a few
hundred MB of VRAM until the process exits. psutil gives RAM, swap and CPU load; what torch was
built for is read from its version file (steady.request.devices). GPUs and their free memory come
from the worker (its Ready and Heartbeat messages report them), from NVML (the optional
`nvidia-ml-py` package, module `pynvml`, which needs no CUDA context), or from the worker's own
probe run as a short child process (`python -m steady.worker.gpus`).
Linux extras come from /proc (swap devices, swappiness) and the cgroup memory limit of a
container; Windows extras from the registry (paging file sizes), read only on Windows.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from steady.sysmem import ram_view

GIB = 1024**3
GPU_PROBE_TIMEOUT_S = 60
MIB = 1024**2


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    vram_total: int  # bytes
    vram_free: int  # bytes free on the device when probed (other programs' use excluded)
    usable: bool = True  # False: the driver sees it, this torch build cannot use it


@dataclass(frozen=True)
class SwapDevice:
    """One Linux swap area (/proc/swaps). zram is compressed RAM, not disk."""

    path: str
    kind: str  # 'file' | 'partition' | 'zram'
    size: int
    used: int


@dataclass(frozen=True)
class PagingFile:
    """One Windows paging file from the registry. Sizes in MiB; 0/0 means system-managed."""

    path: str
    initial_mib: int
    maximum_mib: int

    @property
    def system_managed(self) -> bool:
        return self.initial_mib == 0 and self.maximum_mib == 0

    @property
    def fixed(self) -> bool:
        return not self.system_managed and self.initial_mib == self.maximum_mib


@dataclass(frozen=True)
class Machine:
    platform: str  # sys.platform: 'linux', 'win32', 'darwin'
    cpu_logical: int
    cpu_physical: int
    cpu_usable: int  # logical CPUs this process may run on (affinity, container quota)
    cpu_idle: int  # usable logical CPUs that were mostly idle while probed
    cpu_bf16: bool | None  # native bfloat16 instructions (AVX512-BF16/AMX, Arm BF16); None: unknown
    ram_total: int
    ram_available: int  # what can be used without swapping (container limit applied)
    swap_total: int
    swap_free: int
    gpus: list[Gpu] = field(default_factory=list)
    swap_devices: list[SwapDevice] = field(default_factory=list)  # Linux only
    swappiness: int | None = None  # Linux vm.swappiness
    paging_files: list[PagingFile] | None = None  # Windows only; None elsewhere or unreadable
    ram_limit: int | None = None  # container (cgroup) memory limit, when below RAM
    mps: bool = False  # Apple GPU usable by torch
    torch_version: str | None = None
    torch_cuda: str | None = None  # CUDA version torch was built with; None: CPU-only build
    nvidia_driver: bool = False  # nvidia-smi on PATH or /proc/driver/nvidia present
    notes: list[str] = field(default_factory=list)  # what could not be probed, and why

    def usable_gpus(self) -> list[Gpu]:
        return [g for g in self.gpus if g.usable]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Machine:
        d = dict(data)
        d["gpus"] = [Gpu(**g) for g in d.get("gpus", [])]
        d["swap_devices"] = [SwapDevice(**s) for s in d.get("swap_devices", [])]
        if d.get("paging_files") is not None:
            d["paging_files"] = [PagingFile(**p) for p in d["paging_files"]]
        return cls(**d)


# ---------------------------------------------------------------------------------------------
def probe_machine(*, gpus: list[Gpu] | None = None, cpu_sample_s: float = 0.2, probe_gpus: bool = True) -> Machine:
    """Probe now, without importing torch. `cpu_sample_s` is how long CPU load is sampled to count
    idle cores (0: skip, every usable core counts as idle). GPUs: ``gpus`` when a worker has
    reported them (its Ready and Heartbeat messages), else `gpu_report` (NVML, or the worker's own
    probe in a short child process); ``probe_gpus=False`` leaves them out."""
    import psutil

    from steady.request.devices import mps_possible, native_bf16, torch_build

    notes: list[str] = []
    # 1. CPU: logical, physical, the ones we may use, and the ones nobody else is using.
    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable_set = _affinity(logical)
    usable = min(len(usable_set), _cgroup_cpu_quota() or logical)
    idle = usable
    if cpu_sample_s > 0:
        loads = psutil.cpu_percent(interval=cpu_sample_s, percpu=True)
        idle = min(usable, sum(1 for i, load in enumerate(loads) if i in usable_set and load < 50.0))
    # 2. RAM and swap; a container's limit caps what is available.
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    ram = ram_view()
    available, limit = ram.available, ram.limit
    if limit is not None:
        notes.append(f"memory limited to {limit / GIB:.1f} GiB by the container (cgroup)")
    # 3. Platform extras.
    swap_devices: list[SwapDevice] = []
    swappiness = None
    paging = None
    if sys.platform.startswith("linux"):
        swap_devices = parse_proc_swaps(_read_text("/proc/swaps") or "")
        text = _read_text("/proc/sys/vm/swappiness")
        swappiness = int(text) if text and text.strip().isdigit() else None
    elif sys.platform == "win32":
        paging = read_paging_files(notes)
    # 4. What torch was built for, read from its version file (steady.request.devices), and GPUs.
    build = torch_build()
    if build.version is None:
        notes.append("torch is not installed")
    if gpus is None:
        gpus = gpu_report(build.gpu, notes) if probe_gpus else []
    return Machine(
        platform=sys.platform,
        cpu_logical=logical,
        cpu_physical=physical,
        cpu_usable=usable,
        cpu_idle=idle,
        cpu_bf16=native_bf16(),
        ram_total=int(vm.total),
        ram_available=available,
        swap_total=int(sw.total),
        swap_free=int(sw.free),
        gpus=list(gpus),
        swap_devices=swap_devices,
        swappiness=swappiness,
        paging_files=paging,
        ram_limit=limit,
        mps=mps_possible(),
        torch_version=build.version,
        torch_cuda=build.cuda or build.hip,
        nvidia_driver=nvidia_driver_present(),
        notes=notes,
    )


def gpu_report(torch_gpu: bool, notes: list[str]) -> list[Gpu]:
    """The GPUs and their free memory, without a CUDA context in this process: NVML when the
    optional `nvidia-ml-py` is installed, else (for a GPU build of torch on a machine with a
    driver) the worker's own probe, `python -m steady.worker.gpus`, run as a short child."""
    gpus = _probe_nvml(notes, usable=torch_gpu)
    if gpus or not torch_gpu or (not nvidia_driver_present() and not Path("/dev/kfd").exists()):
        return gpus
    try:
        out = subprocess.run([sys.executable, "-m", "steady.worker.gpus"], capture_output=True, text=True,
                             timeout=GPU_PROBE_TIMEOUT_S, check=False)  # fmt: skip
        return [Gpu(**g) for g in json.loads(out.stdout or "[]")]
    except (OSError, subprocess.TimeoutExpired, ValueError, TypeError) as exc:
        notes.append(f"GPU probe failed: {exc}")
        return []


def _probe_nvml(notes: list[str], usable: bool) -> list[Gpu]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        notes.append(f"NVML: {exc}")
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            gpus.append(Gpu(index=i, name=name, vram_total=int(mem.total), vram_free=int(mem.free), usable=usable))
        return gpus
    except pynvml.NVMLError as exc:
        notes.append(f"NVML: {exc}")
        return []
    finally:
        pynvml.nvmlShutdown()


# ---------------------------------------------------------------------------------------------
# Linux
# ---------------------------------------------------------------------------------------------
def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def parse_proc_swaps(text: str) -> list[SwapDevice]:
    """/proc/swaps: 'Filename Type Size Used Priority', sizes in KiB, paths with spaces escaped."""
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or not (parts[2].isdigit() and parts[3].isdigit()):
            continue
        path = parts[0].replace("\\040", " ")
        kind = "zram" if "/zram" in path else ("file" if parts[1] == "file" else "partition")
        out.append(SwapDevice(path=path, kind=kind, size=int(parts[2]) * 1024, used=int(parts[3]) * 1024))
    return out


def _affinity(logical: int) -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return set(range(logical))


def _cgroup_cpu_quota() -> int | None:
    """cgroup v2 cpu.max 'QUOTA PERIOD' -> whole CPUs (at least 1); None when unlimited."""
    text = _read_text("/sys/fs/cgroup/cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max" or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return max(1, int(parts[0]) // max(1, int(parts[1])))


def nvidia_driver_present() -> bool:
    """An NVIDIA driver is installed: nvidia-smi on PATH, or the Linux driver's /proc entry."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------
_MM_KEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management"


def parse_paging_files(entries: list[str]) -> list[PagingFile]:
    """Registry value PagingFiles (REG_MULTI_SZ): 'C:\\pagefile.sys 4096 8192' (MiB), 'C:\\pagefile.sys
    0 0' (system-managed), or '?:\\pagefile.sys' (system-managed on every drive)."""
    out = []
    for entry in entries:
        parts = entry.strip().split()
        if not parts:
            continue
        sizes = [int(p) for p in parts[1:3] if p.isdigit()]
        initial, maximum = (sizes + [0, 0])[:2]
        out.append(PagingFile(path=parts[0], initial_mib=initial, maximum_mib=maximum))
    return out


def read_paging_files(notes: list[str]) -> list[PagingFile] | None:
    """The paging files Windows is configured with; None off Windows or when unreadable."""
    if sys.platform != "win32":
        return None
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, _MM_KEY) as key:
            value, _kind = winreg.QueryValueEx(key, "PagingFiles")
    except OSError as exc:
        notes.append(f"cannot read the paging file settings from the registry: {exc}")
        return None
    return parse_paging_files(list(value) if isinstance(value, (list, tuple)) else [str(value)])


# ---------------------------------------------------------------------------------------------
# warnings
# ---------------------------------------------------------------------------------------------
def machine_warnings(m: Machine) -> list[str]:
    """Problems worth fixing before a long run, each with what to do about it."""
    w: list[str] = []
    ram = m.ram_total / GIB
    swap_name = "paging file" if m.platform == "win32" else "swap"
    if m.swap_total == 0:
        fix = (
            "set the paging file to System managed (System > Advanced > Performance > Virtual memory)"
            if m.platform == "win32"
            else f"add a swap file of {max(4, round(ram / 2))} GiB or more"
        )
        w.append(
            f"no {swap_name} at all: when memory runs out, a process is killed (perhaps your desktop "
            f"session) instead of slowing down; {fix}. Steady plans not to need it, but loads spike"
        )
    elif m.swap_total < m.ram_total / 2:
        w.append(
            f"{swap_name} is {m.swap_total / GIB:.1f} GiB, less than half of RAM ({ram:.1f} GiB): a spike while "
            f"loading a model can still fail; {max(4, round(ram / 2))} GiB or more is safer"
        )
    if m.swap_devices and all(d.kind == "zram" for d in m.swap_devices):
        w.append("swap is zram only (compressed RAM, no disk): it stretches RAM by about 2x at best")
    for pf in m.paging_files or []:
        if pf.fixed:
            w.append(
                f"the paging file {pf.path} is fixed at {pf.maximum_mib} MiB: Windows cannot grow it when loading "
                "a model needs more committed memory, and the load fails with 'The paging file is too small "
                "for this operation to complete' (os error 1455); set it to System managed"
            )
    if m.ram_available < min(4 * GIB, m.ram_total // 4):
        w.append(
            f"only {m.ram_available / GIB:.1f} GiB of {ram:.1f} GiB RAM is available: close other programs "
            "before generating, or the planner will pick slow strategies or refuse"
        )
    on_disk = any(d.kind != "zram" for d in m.swap_devices)
    if m.swappiness is not None and m.swappiness > 60 and on_disk:
        w.append(
            f"vm.swappiness is {m.swappiness} (default 60) with swap on disk: the kernel prefers swapping program "
            "memory to dropping file cache; if images stall between steps, try `sysctl vm.swappiness=10`"
        )
    if m.nvidia_driver and not m.usable_gpus() and m.torch_version is not None:
        if m.torch_cuda is None:
            w.append(
                f"an NVIDIA GPU seems present (driver found) but torch {m.torch_version} is a CPU-only build: "
                "install the CUDA build of torch (https://pytorch.org/get-started/locally/) to use the GPU"
            )
        else:
            w.append(
                f"torch {m.torch_version} is built for CUDA {m.torch_cuda} but cannot use the GPU: "
                "the NVIDIA driver may be older than that CUDA version needs"
            )
    busy = m.cpu_usable - m.cpu_idle
    if busy > 0:
        w.append(
            f"{busy} of {m.cpu_usable} CPU cores were busy with other programs: CPU generation uses every "
            "physical core (so that the same request gives the same pixels whatever the load), and a thread "
            "sharing its core with another program stalls the others: close what is busy for full speed"
        )
    return w


def with_vram_limit(m: Machine, limit: int | None) -> Machine:
    """``m`` as a process capped at ``limit`` bytes of each GPU sees it (config's vram_limit_gib):
    each GPU's total and free memory at most the cap. None: ``m`` as it is."""
    if limit is None:
        return m
    gpus = [replace(g, vram_total=min(g.vram_total, limit), vram_free=min(g.vram_free, limit)) for g in m.gpus]
    return replace(m, gpus=gpus)


def describe(m: Machine) -> list[str]:
    """The machine as short 'label: value' lines for people."""
    os_line = f"{platform.system() or m.platform} {platform.release()} ({platform.machine()})"
    torch_line = "not importable" if m.torch_version is None else m.torch_version
    if m.torch_version is not None:
        torch_line += f", CUDA {m.torch_cuda}" if m.torch_cuda else " (CPU-only build)"
    bf16 = {True: "native", False: "emulated (slower)", None: "unknown"}[m.cpu_bf16]
    lines = [
        f"OS: {os_line}, Python {platform.python_version()}",
        f"torch: {torch_line}",
        f"CPU: {m.cpu_physical} physical / {m.cpu_logical} logical cores, {m.cpu_usable} usable, "
        f"{m.cpu_idle} idle; bfloat16 {bf16}",
        f"RAM: {m.ram_total / GIB:.1f} GiB total, {m.ram_available / GIB:.1f} GiB available"
        + (f" (container limit {m.ram_limit / GIB:.1f} GiB)" if m.ram_limit else ""),
    ]
    swap = f"{m.swap_total / GIB:.1f} GiB total, {m.swap_free / GIB:.1f} GiB free" if m.swap_total else "none"
    if m.swap_devices:
        swap += "; " + ", ".join(f"{d.path} ({d.kind}, {d.size / GIB:.1f} GiB)" for d in m.swap_devices)
    if m.swappiness is not None:
        swap += f"; vm.swappiness {m.swappiness}"
    lines.append(("Paging file: " if m.platform == "win32" else "Swap: ") + swap)
    for pf in m.paging_files or []:
        size = "system managed" if pf.system_managed else f"{pf.initial_mib}-{pf.maximum_mib} MiB"
        lines.append(f"  {pf.path}: {size}")
    if not m.gpus:
        lines.append("GPU: none usable" + (" (Apple MPS available)" if m.mps else ""))
    for g in m.gpus:
        note = "" if g.usable else " (not usable by this torch)"
        lines.append(
            f"GPU {g.index}: {g.name}, {g.vram_total / GIB:.1f} GiB VRAM, {g.vram_free / GIB:.1f} GiB free{note}"
        )
    lines += [f"note: {n}" for n in m.notes]
    return lines
