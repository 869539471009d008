"""Memory watch and recycle policy (supervisor side: psutil only, no torch).

``MemoryWatch`` samples, about twice a second, the worker's RSS and USS, its GPU memory (NVML's
per-process figure when pynvml is installed, else the torch_reserved of the worker's last
heartbeat), the system's available RAM, swap used and the swap-in rate. ``RecyclePolicy.decide``
says, between two images, whether the worker should be replaced and why.

Defaults and their reasons (docs/worker.md has the measurements):
- baseline: the worker's RSS after ``warmup_images`` images (allocator pools, cached kernels and
  the first-image workspace are in by then); growth is measured against it.
- ``rss_growth``: replace when RSS passed baseline + max(15 % of it, 256 MiB). A1111/ComfyUI users
  report growth of GBs per hour (docs/memory.md); a healthy worker stays within a few %.
- ``min_available``: replace (if the worker grew at all) when system available RAM falls below
  min(1.5 GiB, 10 % of RAM): the desktop starts to swap there.
- ``max_swap_in``: replace (if the worker grew) when the machine swaps in more than 8 MiB/s.
- ``max_images`` 1000 and ``max_hours`` 2: backstops for growth the other rules miss; users are
  told to reboot every ~3 hours, so we renew well before that, for one model load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from steady.jobs.protocol import MemorySample

MIB = 2**20
GIB = 2**30


@dataclass(frozen=True)
class RecyclePolicy:
    warmup_images: int = 3
    rss_growth_fraction: float = 0.15
    rss_growth_min_bytes: int = 256 * MIB
    min_available_bytes: int = int(1.5 * GIB)
    min_available_fraction: float = 0.10
    min_growth_for_pressure: int = 64 * MIB  # pressure rules act only on a worker that grew
    max_swap_in_per_s: float = 8 * MIB
    max_images: int = 1000
    max_hours: float = 2.0

    def margin(self, baseline: int) -> int:
        return max(int(self.rss_growth_fraction * baseline), self.rss_growth_min_bytes)

    def decide(self, w: WorkerStats, total_ram: int) -> str | None:
        """The reason to replace the worker now (between images), or None."""
        if w.images >= self.max_images:
            return f"made {w.images} images (limit {self.max_images})"
        if w.age_s >= self.max_hours * 3600:
            return f"ran {w.age_s / 3600:.1f} h (limit {self.max_hours} h)"
        if w.baseline_rss is None:
            return None
        grown = w.rss - w.baseline_rss
        if grown > self.margin(w.baseline_rss):
            return (f"RSS grew {grown / MIB:.0f} MiB above its post-warm-up baseline of "
                    f"{w.baseline_rss / MIB:.0f} MiB (limit {self.margin(w.baseline_rss) / MIB:.0f} MiB)")  # fmt: skip
        if grown < self.min_growth_for_pressure:
            return None
        floor = min(self.min_available_bytes, int(self.min_available_fraction * total_ram))
        if w.available < floor:
            return f"system available RAM {w.available / MIB:.0f} MiB is below {floor / MIB:.0f} MiB"
        if w.swap_in_per_s > self.max_swap_in_per_s:
            return f"the system is swapping in {w.swap_in_per_s / MIB:.1f} MiB/s"
        return None


@dataclass
class WorkerStats:
    images: int
    age_s: float
    rss: int
    baseline_rss: int | None
    available: int
    swap_in_per_s: float


def _nvml_process_bytes(pid: int) -> int | None:
    """GPU memory NVML attributes to ``pid`` (None when pynvml or a GPU is absent)."""
    try:
        import pynvml  # optional: nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory:
                    total += int(proc.usedGpuMemory)
        return total
    except pynvml.NVMLError:
        return None


class MemoryWatch:
    """A daemon thread sampling one worker process every ``interval`` seconds.

    ``samples`` keeps the last ``keep`` samples (about 5.5 h at 2 Hz); ``on_sample`` sees every one
    (the soak writes them all to disk). ``torch_reserved`` is fed from the worker's heartbeats."""

    def __init__(self, interval: float = 0.5, keep: int = 40_000,
                 on_sample: Callable[[MemorySample], None] | None = None):  # fmt: skip
        self.interval = interval
        self.samples: deque[MemorySample] = deque(maxlen=keep)
        self.on_sample = on_sample
        self.t0 = time.monotonic()
        self.pid = 0
        self.images = 0
        self.torch_reserved = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_sin: tuple[float, int] | None = None

    def watch(self, pid: int) -> None:
        """Follow this worker from now on (a new one after a recycle)."""
        with self._lock:
            self.pid, self.images, self.torch_reserved = pid, 0, 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="steady-memory-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample = self.sample()
            if sample is not None and self.on_sample is not None:
                self.on_sample(sample)

    def sample(self) -> MemorySample | None:
        import psutil

        from steady.sysmem import ram_view

        with self._lock:
            pid, images, reserved = self.pid, self.images, self.torch_reserved
        try:
            mem = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        ram, sw, now = ram_view(), psutil.swap_memory(), time.monotonic()
        rate = 0.0
        if self._last_sin is not None and now > self._last_sin[0]:
            rate = max(0.0, (sw.sin - self._last_sin[1]) / (now - self._last_sin[0]))
        self._last_sin = (now, sw.sin)
        nvml = _nvml_process_bytes(pid)
        s = MemorySample(
            t=round(now - self.t0, 3), worker_pid=pid, rss_bytes=mem.rss, uss_bytes=getattr(mem, "uss", mem.rss),
            vram_bytes=nvml if nvml is not None else reserved, available_bytes=ram.available,
            swap_used_bytes=sw.used, swap_in_per_s=rate, images=images,
        )  # fmt: skip
        self.samples.append(s)
        return s

    def latest(self) -> MemorySample | None:
        return self.samples[-1] if self.samples else None
