"""The recycle policy's rules, one by one, and the memory watch on a real process."""

from __future__ import annotations

import os

import pytest

from steady.jobs.memory import GIB, MIB, MemoryWatch, RecyclePolicy, WorkerStats

P = RecyclePolicy()
TOTAL = 16 * GIB


def stats(**kw) -> WorkerStats:
    base = dict(images=10, age_s=60.0, rss=2 * GIB, baseline_rss=2 * GIB, available=8 * GIB, swap_in_per_s=0.0)
    return WorkerStats(**{**base, **kw})


def test_healthy_worker_is_kept() -> None:
    assert P.decide(stats(), TOTAL) is None
    assert P.decide(stats(baseline_rss=None, rss=9 * GIB), TOTAL) is None  # still warming up


def test_rss_growth_past_the_margin() -> None:
    margin = P.margin(2 * GIB)
    assert margin == int(0.15 * 2 * GIB)
    assert P.decide(stats(rss=2 * GIB + margin), TOTAL) is None
    reason = P.decide(stats(rss=2 * GIB + margin + MIB), TOTAL)
    assert reason is not None and "RSS grew" in reason and "baseline of 2048 MiB" in reason
    assert P.margin(100 * MIB) == 256 * MIB  # a small worker gets the absolute floor


def test_pressure_rules_need_a_grown_worker() -> None:
    low = stats(available=500 * MIB)
    assert P.decide(low, TOTAL) is None  # nothing to win by replacing a worker that did not grow
    reason = P.decide(stats(available=500 * MIB, rss=2 * GIB + 100 * MIB), TOTAL)
    assert reason is not None and "available RAM" in reason
    swapping = stats(swap_in_per_s=20 * MIB, rss=2 * GIB + 100 * MIB)
    assert "swapping in" in (P.decide(swapping, TOTAL) or "")


def test_count_and_age_backstops() -> None:
    assert "1000 images" in (P.decide(stats(images=1000), TOTAL) or "")
    assert "limit 2.0 h" in (P.decide(stats(age_s=2 * 3600), TOTAL) or "")


def test_floor_is_a_fraction_on_small_machines() -> None:
    grown = 2 * GIB + 100 * MIB
    # 8 GiB machine: floor is 10 % (819 MiB), not 1.5 GiB
    assert P.decide(stats(rss=grown, available=900 * MIB), 8 * GIB) is None
    assert P.decide(stats(rss=grown, available=700 * MIB), 8 * GIB) is not None


def test_watch_samples_a_live_process() -> None:
    seen = []
    watch = MemoryWatch(interval=0.05, on_sample=seen.append)
    watch.watch(os.getpid())
    try:
        s = watch.sample()
    finally:
        watch.stop()
    assert s is not None and s.worker_pid == os.getpid()
    assert s.rss_bytes > 10 * MIB and 0 < s.uss_bytes <= s.rss_bytes
    assert s.available_bytes > 0 and s.swap_in_per_s >= 0
    assert watch.latest() is not None


def test_watch_of_a_dead_pid_gives_nothing() -> None:
    watch = MemoryWatch()
    watch.pid = 2**22 + 17  # above the default pid_max
    assert watch.sample() is None


@pytest.mark.parametrize("field", ["rss_growth_fraction", "max_images"])
def test_policy_is_frozen(field: str) -> None:
    with pytest.raises(AttributeError):
        setattr(P, field, 1)
