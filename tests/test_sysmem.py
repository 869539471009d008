"""RAM inside a container: the cgroup limit caps what the memory watch and the recycle policy see.
The cgroup folders here are written by the test in the kernel's own file formats."""

from __future__ import annotations

import os

import psutil
import pytest

from steady import sysmem
from steady.jobs.memory import GIB, MIB, MemoryWatch, RecyclePolicy, WorkerStats
from steady.sysmem import cgroup_working_set, ram_view


def cgroup_v2(folder, limit: str, current: int, inactive_file: int):
    folder.mkdir(exist_ok=True)
    (folder / "memory.max").write_text(f"{limit}\n")
    (folder / "memory.current").write_text(f"{current}\n")
    (folder / "memory.stat").write_text(f"anon 123\nfile 456\ninactive_file {inactive_file}\nactive_file 9\n")
    return str(folder)


def test_a_v2_limit_below_ram_is_the_total(tmp_path) -> None:
    root = cgroup_v2(tmp_path / "cg", str(2 * GIB), current=1500 * MIB, inactive_file=300 * MIB)
    view = ram_view(root)
    assert view.limit == view.total == 2 * GIB
    assert cgroup_working_set(root) == 1200 * MIB  # usage less the page cache the kernel drops first
    assert view.available == min(psutil.virtual_memory().available, 2 * GIB - 1200 * MIB)


def test_no_limit_is_the_machine(tmp_path) -> None:
    vm = psutil.virtual_memory()
    for root in (cgroup_v2(tmp_path / "max", "max", current=GIB, inactive_file=0), str(tmp_path / "absent")):
        view = ram_view(root)
        assert view.limit is None and view.total == vm.total and view.available > 0


def test_v1_and_its_unlimited_value(tmp_path) -> None:
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(str(4 * GIB))
    (v1 / "memory.usage_in_bytes").write_text(str(3 * GIB))
    (v1 / "memory.stat").write_text(f"cache 1\ntotal_inactive_file {GIB}\n")
    view = ram_view(str(tmp_path / "v1"))
    assert view.total == 4 * GIB and view.available == min(psutil.virtual_memory().available, 2 * GIB)
    (v1 / "memory.limit_in_bytes").write_text(str(2**63 - 4096))  # v1 writes "unlimited" as this
    assert ram_view(str(tmp_path / "v1")).limit is None


def test_a_full_container_is_out_of_ram(tmp_path) -> None:
    root = cgroup_v2(tmp_path / "cg", str(GIB), current=GIB + 50 * MIB, inactive_file=0)
    assert ram_view(root).available == 0


def test_the_watch_and_the_policy_see_the_container(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3 GiB container on a bigger machine, 2.9 GiB of it in use: the machine has plenty free,
    the container is nearly full, and a grown worker is recycled for it."""
    if psutil.virtual_memory().total <= 4 * GIB:
        pytest.skip("needs a machine with more RAM than the container's limit")
    root = cgroup_v2(tmp_path / "cg", str(3 * GIB), current=2900 * MIB, inactive_file=0)
    monkeypatch.setattr(sysmem, "CGROUP_ROOT", root)
    watch = MemoryWatch()
    watch.watch(os.getpid())
    try:
        sample = watch.sample()
    finally:
        watch.stop()
    assert sample is not None and sample.available_bytes == 3 * GIB - 2900 * MIB
    view = ram_view()
    grown = WorkerStats(images=10, age_s=60.0, rss=2 * GIB + 100 * MIB, baseline_rss=2 * GIB,
                        available=view.available, swap_in_per_s=0.0)  # fmt: skip
    reason = RecyclePolicy().decide(grown, view.total)
    assert reason is not None and "available RAM 172 MiB" in reason
    machine = WorkerStats(**{**grown.__dict__, "available": psutil.virtual_memory().available})
    assert RecyclePolicy().decide(machine, psutil.virtual_memory().total) is None  # what psutil alone would say
