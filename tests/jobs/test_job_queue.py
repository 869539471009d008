"""The durable jobs table: states, ownership, recovery after a crash, missing images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from steady.catalog import open_catalog
from steady.config import settings
from steady.errors import BadInput
from steady.jobs.queue import JobQueue
from steady.params import GenerationRequest
from steady.request.check import ModelChoice, Resolved


def _resolved(prompt: str, n_images: int, seed: int, out: Path) -> Resolved:
    """A checked request as steady.request.check makes one (no model file is read here)."""
    request = GenerationRequest(prompt=prompt, n_images=n_images, seed=seed, steps=3, cfg_scale=5.0, width=64,
                                height=64, sampler="Euler")  # fmt: skip
    return Resolved(request, ModelChoice(Path("/m"), "m", "abc", "sd1", None), "cpu", "float32", out)


def test_lifecycle_and_run_status(tmp_path: Path) -> None:
    with open_catalog(settings().db_path) as cat:
        q = JobQueue(cat)
        job = q.enqueue(_resolved("a red circle", 3, 100, tmp_path))
        assert job.state == "queued" and cat.get_run(job.run_id).status == "queued"
        assert [job.seed_of(i) for i in range(3)] == [100, 101, 102]
        assert job.image_path(2).name == f"{job.run_id:05d}-02-102.png"
        assert job.image_params(1).seed == 101 and job.image_params(1).prompt == "a red circle"
        claimed = q.claim_next()
        assert claimed is not None and claimed.id == job.id and claimed.state == "running"
        assert claimed.owner_pid == os.getpid() and cat.get_run(job.run_id).status == "running"
        assert q.claim_next() is None
        with pytest.raises(BadInput, match="job_id"):
            q.claim(job.id)  # already running
        q.finish(job.id, "done")
        assert q.get(job.id).state == "done" and cat.get_run(job.run_id).status == "done"
        with pytest.raises(BadInput, match="state"):
            q.finish(job.id, "running")
        with pytest.raises(BadInput, match="job_id"):
            q.get(9999)


def test_recover_interrupts_only_jobs_of_dead_owners(tmp_path: Path) -> None:
    """A job whose program died is 'interrupted', never queued again: resuming it is explicit."""
    with open_catalog(settings().db_path) as cat:
        q = JobQueue(cat)
        mine = q.enqueue(_resolved("a", 1, 1, tmp_path))
        theirs = q.enqueue(_resolved("b", 2, 2, tmp_path))
        q.claim(mine.id)
        q.claim(theirs.id)
        with cat.transaction() as conn:
            conn.execute("UPDATE jobs SET owner_pid = 424242 WHERE id = ?", (theirs.id,))
        assert q.recover(alive=lambda pid: False) == [theirs.id]  # this process's own job stays
        assert q.get(theirs.id).state == "interrupted" and q.get(mine.id).state == "running"
        assert cat.get_run(theirs.run_id).status == "interrupted"
        assert q.missing_indices(q.get(theirs.id)) == [0, 1]
        assert q.jobs(("queued",)) == [] and q.claim_next() is None
        assert q.job_of_run(theirs.run_id).id == theirs.id
        resumed = q.resume(theirs.id)
        assert resumed.state == "running" and resumed.owner_pid == os.getpid()
        assert cat.get_run(theirs.run_id).status == "running"
        with pytest.raises(BadInput, match="is running"):
            q.resume(theirs.id)
        q.finish(theirs.id, "done")
        with pytest.raises(BadInput, match="is done"):
            q.resume(theirs.id)
        with pytest.raises(BadInput, match="no such run"):
            q.job_of_run(9999)


def test_a_job_its_caller_runs_is_claimed_as_it_is_written(tmp_path: Path) -> None:
    """`steady generate` beside `steady serve`: the server's queue never sees the CLI's job queued."""
    with open_catalog(settings().db_path) as cat:
        q = JobQueue(cat)
        job = q.enqueue(_resolved("a red circle", 2, 7, tmp_path), claim=True)
        assert job.state == "running" and job.owner_pid == os.getpid()
        assert cat.get_run(job.run_id).status == "running"
        assert q.claim_next() is None
