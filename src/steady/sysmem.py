"""RAM as this process sees it, inside a container too: psutil's figures capped by the cgroup
memory limit (Linux, cgroup v2 or v1). Read at each call; nothing cached; no torch. And
``malloc_trim()``, which hands glibc's freed heap pages back (the worker calls it after each image).

On a 64 GiB host a container limited to 8 GiB is killed by the kernel at 8 GiB, while psutil still
reports the host's free memory. The memory watch, the recycling policy and `steady doctor` must
all see the container's 8 GiB: the limit becomes the total, and what is available is the limit
minus the container's working set (usage less its inactive page cache, which the kernel reclaims
first: the figure Docker and the kubelet use).
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"
_V1 = "memory"  # cgroup v1 keeps the memory controller in its own folder


@dataclass(frozen=True)
class RamView:
    total: int  # bytes: the machine's RAM, or the container's limit where that is lower
    available: int  # bytes that can be used without swapping or the container's OOM kill
    limit: int | None = None  # the container's limit, when below the machine's RAM


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) is not a number


def _first(root: Path, v2: str, v1: str) -> int | None:
    value = _read_int(root / v2)
    return value if value is not None else _read_int(root / _V1 / v1)


def _inactive_file(root: Path) -> int:
    """Inactive page cache charged to the container (reclaimed before anything is killed)."""
    for path, key in ((root / "memory.stat", "inactive_file"), (root / _V1 / "memory.stat", "total_inactive_file")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    return 0


def _root(root: str | None) -> Path:
    return Path(CGROUP_ROOT if root is None else root)


def cgroup_memory_limit(root: str | None = None) -> int | None:
    return _first(_root(root), "memory.max", "memory.limit_in_bytes")


def cgroup_working_set(root: str | None = None) -> int | None:
    """The container's memory use less its inactive page cache (None where it cannot be read)."""
    usage = _first(_root(root), "memory.current", "memory.usage_in_bytes")
    return None if usage is None else max(0, usage - _inactive_file(_root(root)))


def ram_view(root: str | None = None) -> RamView:
    """The machine's RAM and what is available, capped by the container's limit where there is one
    (``root``: the cgroup folder, default /sys/fs/cgroup)."""
    import psutil

    vm = psutil.virtual_memory()
    limit = cgroup_memory_limit(root)
    if limit is None or limit >= vm.total:  # no limit, or cgroup v1's "unlimited" (a huge number)
        return RamView(total=int(vm.total), available=int(vm.available))
    used = cgroup_working_set(root) or 0
    return RamView(total=limit, available=max(0, min(int(vm.available), limit - used)), limit=limit)


def malloc_trim() -> bool:
    """Give freed heap pages back to the OS on glibc (glibc keeps them otherwise)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False
