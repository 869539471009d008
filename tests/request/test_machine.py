"""Machine probe: parsers for /proc/swaps and the Windows PagingFiles value, the registry read (with
a fake winreg), NVML (a fake pynvml), warnings for small machines, and one real probe."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from steady.request import machine as M
from steady.request.machine import GIB, Gpu, Machine, PagingFile, SwapDevice

PROC_SWAPS = """Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/swap\\040file\t\t\t\tfile\t\t8388604\t\t1024\t\t-2
/dev/nvme0n1p3                          partition\t2097148\t\t0\t\t-3
/dev/zram0                              partition\t4194300\t\t0\t\t100
"""


def healthy(**kw) -> Machine:
    base = dict(platform="linux", cpu_logical=8, cpu_physical=4, cpu_usable=8, cpu_idle=8, cpu_bf16=True,
                ram_total=16 * GIB, ram_available=12 * GIB, swap_total=8 * GIB, swap_free=8 * GIB,
                swap_devices=[SwapDevice("/swapfile", "file", 8 * GIB, 0)], swappiness=60,
                torch_version="2.13.0", torch_cuda="12.8", nvidia_driver=True,
                gpus=[Gpu(0, "RTX", 8 * GIB, 7 * GIB)])
    base.update(kw)
    return Machine(**base)


def test_parse_proc_swaps():
    devs = M.parse_proc_swaps(PROC_SWAPS)
    assert devs == [
        SwapDevice("/swap file", "file", 8388604 * 1024, 1024 * 1024),
        SwapDevice("/dev/nvme0n1p3", "partition", 2097148 * 1024, 0),
        SwapDevice("/dev/zram0", "zram", 4194300 * 1024, 0),
    ]
    assert M.parse_proc_swaps("Filename Type Size Used Priority\n") == []


def test_parse_paging_files():
    pfs = M.parse_paging_files(["C:\\pagefile.sys 4096 4096", "D:\\pagefile.sys 0 0", "?:\\pagefile.sys",
                                "E:\\pagefile.sys 1024 8192", ""])
    assert [(p.path, p.fixed, p.system_managed) for p in pfs] == [
        ("C:\\pagefile.sys", True, False), ("D:\\pagefile.sys", False, True),
        ("?:\\pagefile.sys", False, True), ("E:\\pagefile.sys", False, False)]


def test_registry_is_read_only_on_windows(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setitem(sys.modules, "winreg", None)  # importing it would fail
    assert M.read_paging_files([]) is None

    class Key:
        def __enter__(self): return self
        def __exit__(self, *exc): return False

    seen = {}

    def query(key, name):
        seen["name"] = name
        return ["C:\\pagefile.sys 2048 2048"], 7

    fake = SimpleNamespace(HKEY_LOCAL_MACHINE="HKLM", OpenKey=lambda root, path: seen.update(path=path) or Key(),
                           QueryValueEx=query)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "winreg", fake)
    assert M.read_paging_files([]) == [PagingFile("C:\\pagefile.sys", 2048, 2048)]
    assert seen == {"path": M._MM_KEY, "name": "PagingFiles"}

    def denied(root, path):
        raise PermissionError("access denied")

    fake.OpenKey = denied
    notes: list[str] = []
    assert M.read_paging_files(notes) is None and "registry" in notes[0]


def test_healthy_machine_has_no_warnings():
    assert M.machine_warnings(healthy()) == []


@pytest.mark.parametrize("change,expect", [
    (dict(swap_total=0, swap_free=0, swap_devices=[]), "no swap at all"),
    (dict(platform="win32", swap_total=0, swap_free=0, swap_devices=[]), "no paging file at all"),
    (dict(swap_total=2 * GIB), "less than half of RAM"),
    (dict(swap_devices=[SwapDevice("/dev/zram0", "zram", 8 * GIB, 0)]), "zram only"),
    (dict(platform="win32", swap_devices=[], swappiness=None,
          paging_files=[PagingFile("C:\\pagefile.sys", 4096, 4096)]), "os error 1455"),
    (dict(ram_available=1 * GIB), "only 1.0 GiB of 16.0 GiB RAM is available"),
    (dict(swappiness=100), "vm.swappiness is 100"),
    (dict(torch_cuda=None, torch_version="2.13.0+cpu", gpus=[]), "CPU-only build"),
    (dict(gpus=[Gpu(0, "RTX", 8 * GIB, 7 * GIB, usable=False)], torch_cuda=None), "install the CUDA build"),
    (dict(gpus=[]), "driver may be older"),
    (dict(cpu_idle=6), "2 of 8 CPU cores were busy"),
])
def test_warnings(change, expect):
    warnings = M.machine_warnings(healthy(**change))
    assert any(expect in w for w in warnings), warnings


def test_high_swappiness_with_zram_is_not_a_warning():
    m = healthy(swappiness=180, swap_devices=[SwapDevice("/dev/zram0", "zram", 8 * GIB, 0)])
    assert not any("swappiness" in w for w in M.machine_warnings(m))


def test_describe_names_what_matters():
    text = "\n".join(M.describe(healthy(platform="win32", paging_files=[PagingFile("C:\\pagefile.sys", 0, 0)])))
    assert "RTX, 8.0 GiB VRAM, 7.0 GiB free" in text and "Paging file:" in text and "system managed" in text


def test_machine_round_trips_as_a_dict():
    m = healthy(paging_files=[PagingFile("C:\\p.sys", 1, 2)], notes=["x"])
    assert Machine.from_dict(m.to_dict()) == m


def test_probe_this_machine():
    m = M.probe_machine(cpu_sample_s=0)
    assert m.cpu_logical >= m.cpu_usable >= m.cpu_idle >= 1 and m.cpu_physical >= 1
    assert 0 < m.ram_available <= m.ram_total and m.platform == sys.platform
    assert m.torch_version is not None  # torch is installed in the test environment
    assert all(g.vram_total >= g.vram_free >= 0 for g in m.gpus)


def test_nvml_names_gpus_torch_cannot_use(monkeypatch):
    class NVMLError(Exception):
        pass

    fake = SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda h: b"NVIDIA GeForce GTX 1650",
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=4 * GIB, free=3 * GIB),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(M, "nvidia_driver_present", lambda: True)
    m = M.probe_machine(cpu_sample_s=0)  # torch here is a CPU-only build
    assert m.gpus == [Gpu(0, "NVIDIA GeForce GTX 1650", 4 * GIB, 3 * GIB, usable=False)]
    assert m.usable_gpus() == []


def test_gpus_a_worker_reported_are_used_as_given():
    reported = [Gpu(0, "RTX", 8 * GIB, 5 * GIB)]
    assert M.probe_machine(gpus=reported, cpu_sample_s=0).gpus == reported


def test_without_nvml_a_gpu_build_asks_the_workers_probe_in_a_child(monkeypatch):
    """A CUDA torch build, a driver, no NVML: the GPUs come from `python -m steady.worker.gpus` in a
    child process (here torch is a CPU build, so the real child reports none), never from torch
    imported in this process."""
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    monkeypatch.setattr(M, "nvidia_driver_present", lambda: True)
    before = "torch" in sys.modules
    notes: list[str] = []
    assert M.gpu_report(True, notes) == [] and notes == []
    assert ("torch" in sys.modules) == before
