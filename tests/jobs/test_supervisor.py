"""The supervised worker, with faults injected: a leaking worker is recycled between images, a
worker killed mid-image is replaced and the image made again, a GPU out-of-memory error is
retried one rung thriftier. Every image is compared pixel for pixel with an undisturbed run."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from steady.catalog import open_catalog
from steady.config import settings
from steady.jobs.memory import MIB, RecyclePolicy
from steady.jobs.protocol import ImageDone, Progress, Recycle
from steady.jobs.queue import JobQueue
from steady.jobs.runner import prepare, run, submit
from steady.jobs.supervisor import Supervisor, SupervisorOptions, WorkerDied
from steady.params import GenerationRequest
from tests.fixtures.tiny_models import save_tiny_folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_folder("sd1", tmp_path_factory.mktemp("m") / "tiny-sd1")


def _request(model: Path, n: int, steps: int = 3) -> GenerationRequest:
    return GenerationRequest(prompt="a red circle", model=str(model), n_images=n, steps=steps, seed=11,
                             sampler="Euler")  # fmt: skip


def _pixels(paths: list[str]) -> list[np.ndarray]:
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def _rows(run_id: int) -> list[tuple[int, str]]:
    with open_catalog(settings().db_path) as cat, cat.reading() as conn:
        return conn.execute("SELECT idx, path FROM images WHERE run_id = ? ORDER BY idx", (run_id,)).fetchall()


@pytest.fixture(scope="module")
def reference(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """Five images made without any fault, in a home of their own."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STEADY_HOME", str(tmp_path_factory.mktemp("ref-home")))
    try:
        outcome = run(_request(model_dir, 5), options=SupervisorOptions(threads=1))
    finally:
        mp.undo()
    assert outcome.state == "done" and not outcome.recycles and not outcome.deaths
    return _pixels([r.path for r in outcome.images])


def test_leaking_worker_is_recycled_at_the_right_image(model_dir: Path, reference: list[np.ndarray]) -> None:
    policy = RecyclePolicy(warmup_images=1, rss_growth_fraction=0.0, rss_growth_min_bytes=150 * MIB)
    options = SupervisorOptions(policy=policy, fault={"leak_mb_per_image": 100}, threads=1)
    events: list[object] = []
    outcome = run(_request(model_dir, 5), on_event=events.append, options=options)
    assert outcome.state == "done"
    # Baseline after image 1 (0-based 0); +100 MiB per image: 200 MiB > 150 before image 3.
    assert len(outcome.recycles) == 1, outcome.recycles
    recycle = outcome.recycles[0]
    assert recycle.images == 3 and "RSS grew" in recycle.reason
    assert recycle.rss_bytes - recycle.baseline_rss_bytes >= 150 * MIB
    order = [e.index if hasattr(e, "index") and not isinstance(e, ImageDone) else "recycle"
             for e in events if isinstance(e, Recycle) or type(e).__name__ == "GenerationResult"]  # fmt: skip
    assert order == [0, 1, 2, "recycle", 3, 4]
    assert [idx for idx, _ in _rows(outcome.run_id)] == [0, 1, 2, 3, 4]
    for got, want in zip(_pixels([r.path for r in outcome.images]), reference, strict=True):
        np.testing.assert_array_equal(got, want)
    with open_catalog(settings().db_path) as cat:
        job = JobQueue(cat).get(outcome.job_id)
    assert job.state == "done" and job.recycles == 1


def test_worker_killed_mid_image_is_replaced_and_the_image_made_again(model_dir: Path,
                                                                       reference: list[np.ndarray]) -> None:  # fmt: skip
    cfg = settings()
    killed: list[int] = []
    with open_catalog(cfg.db_path) as cat:
        job = submit(prepare(_request(model_dir, 4, steps=3), cfg), cat)
        sup = Supervisor(cat, SupervisorOptions(threads=1))

        def on_event(event: object) -> None:
            if isinstance(event, Progress) and event.image_index == 2 and event.step == 2 and not killed:
                assert sup.worker is not None
                killed.append(sup.worker.pid)
                os.kill(sup.worker.pid, signal.SIGKILL)

        with sup:
            outcome = sup.run(JobQueue(cat).claim(job.id), on_event)
        job = JobQueue(cat).get(job.id)
    assert killed and outcome.state == "done"
    assert len(outcome.deaths) == 1
    death = outcome.deaths[0]
    assert isinstance(death, WorkerDied) and death.index == 2 and death.pid == killed[0]
    assert death.exitcode == -signal.SIGKILL
    rows = _rows(job.run_id)
    assert [idx for idx, _ in rows] == [0, 1, 2, 3]  # exactly one row per image
    out_dir = Path(job.out_dir)
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == sorted(Path(p).name for _, p in rows)  # no temp or partial file beside them
    assert job.attempts == 1 and job.state == "done"
    for got, want in zip(_pixels([p for _, p in rows]), reference[:4], strict=True):
        np.testing.assert_array_equal(got, want)


def _gpu_rung_plan(job_plan) -> dict:
    """The CPU plan relabelled as the all-on-GPU rung: diffusers runs the next thriftier rung
    (model offload to device 'cpu') on the CPU too, so the retry path runs for real without a GPU."""
    return {**job_plan.to_dict(), "strategy": "gpu"}


def test_out_of_memory_is_retried_one_rung_thriftier(model_dir: Path, reference: list[np.ndarray]) -> None:
    cfg = settings()
    seen: list[ImageDone] = []
    with open_catalog(cfg.db_path) as cat:
        job = submit(prepare(_request(model_dir, 2), cfg), cat)
        with cat.transaction() as conn:
            import json

            conn.execute("UPDATE jobs SET plan_json = ? WHERE id = ?", (json.dumps(_gpu_rung_plan(job.plan)), job.id))
        with Supervisor(cat, SupervisorOptions(fault={"oom_once_at": [1]}, threads=1)) as sup:
            outcome = sup.run(JobQueue(cat).claim(job.id), lambda e: seen.append(e) if isinstance(e, ImageDone) else None)
    assert outcome.state == "done"
    from steady.request.planner import Plan, next_thriftier

    thriftier = next_thriftier(Plan.from_dict(_gpu_rung_plan(job.plan)))
    assert thriftier is not None
    assert [d.strategy for d in seen] == ["gpu", thriftier.strategy]
    assert seen[0].events == [] and f"retried with {thriftier.strategy}" in seen[1].events[0]
    for got, want in zip(_pixels([r.path for r in outcome.images]), reference[:2], strict=True):
        np.testing.assert_array_equal(got, want)


def test_second_out_of_memory_fails_the_job_with_a_message(model_dir: Path) -> None:
    cfg = settings()
    with open_catalog(cfg.db_path) as cat:
        job = submit(prepare(_request(model_dir, 2), cfg), cat)
        with cat.transaction() as conn:
            import json

            conn.execute("UPDATE jobs SET plan_json = ? WHERE id = ?", (json.dumps(_gpu_rung_plan(job.plan)), job.id))
        with Supervisor(cat, SupervisorOptions(fault={"oom_always_at": [0]})) as sup:
            outcome = sup.run(JobQueue(cat).claim(job.id))
        job = JobQueue(cat).get(job.id)
    assert outcome.state == "failed" and job.state == "failed"
    assert outcome.failure is not None and outcome.failure.kind == "oom"
    assert "out of GPU memory with 'gpu' and again with" in outcome.error
    assert _rows(job.run_id) == []


def test_bad_model_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    from steady.errors import BadInput

    with pytest.raises(BadInput) as err:
        run(GenerationRequest(prompt="x", model=str(tmp_path / "nope.safetensors")))
    assert "model" in str(err.value)
    with open_catalog(settings().db_path) as cat, cat.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_recovered_job_makes_only_the_missing_images(model_dir: Path, reference: list[np.ndarray]) -> None:
    cfg = settings()
    with open_catalog(cfg.db_path) as cat:
        queue = JobQueue(cat)
        job = submit(prepare(_request(model_dir, 3), cfg), cat)
        with Supervisor(cat, SupervisorOptions(threads=1)) as sup:
            first = sup.run(queue.claim(job.id), should_stop=lambda: len(_rows(job.run_id)) >= 1)
        assert first.state == "cancelled" and len(_rows(job.run_id)) == 1
        # As if the program had died while the job ran: state 'running', owner gone.
        with cat.transaction() as conn:
            conn.execute("UPDATE jobs SET state = 'running', owner_pid = 999999999 WHERE id = ?", (job.id,))
        assert queue.recover(alive=lambda pid: False) == [job.id]
        assert queue.get(job.id).state == "interrupted" and queue.claim_next() is None  # resumed only when asked
        assert queue.missing_indices(queue.get(job.id)) == [1, 2]
        with Supervisor(cat, SupervisorOptions(threads=1)) as sup:
            second = sup.run(queue.resume(job.id))
    assert second.state == "done" and [r.index for r in second.images] == [1, 2]
    rows = _rows(job.run_id)
    assert [idx for idx, _ in rows] == [0, 1, 2]
    for got, want in zip(_pixels([p for _, p in rows]), reference[:3], strict=True):
        np.testing.assert_array_equal(got, want)


def test_protocol_messages_are_dataclasses_with_a_type_tag() -> None:
    from steady.jobs import protocol

    for name in ("RenderImage", "Cancel", "Shutdown", "Ready", "Progress", "ImageDone", "Failure", "Heartbeat",
                 "MemorySample", "Recycle"):  # fmt: skip
        cls = getattr(protocol, name)
        assert dataclasses.is_dataclass(cls)
    d = protocol.Heartbeat(pid=1, rss_bytes=2).to_dict()
    assert d["type"] == "Heartbeat" and d["rss_bytes"] == 2


def test_a_worker_that_keeps_dying_fails_the_job_after_three_tries(model_dir: Path) -> None:
    from steady.jobs.supervisor import WorkerFailed

    cfg = settings()
    with open_catalog(cfg.db_path) as cat:
        job = submit(prepare(_request(model_dir, 2), cfg), cat)
        with Supervisor(cat, SupervisorOptions(fault={"die_at": [1]}, threads=1)) as sup:
            with pytest.raises(WorkerFailed, match="died 3 times on image 1"):
                sup.run(JobQueue(cat).claim(job.id))
            assert [d.exitcode for d in sup.deaths] == [3, 3, 3]
        job = JobQueue(cat).get(job.id)
    assert job.state == "failed" and job.attempts == 3 and "WorkerFailed" in job.error
    assert [idx for idx, _ in _rows(job.run_id)] == [0]
