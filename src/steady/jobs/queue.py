"""Durable generation jobs in the catalog database (the ``jobs`` table, migration m002).

A job is one run of ``n_images`` images from one request. It is written (with its run row, status
'queued') before any work starts, and every image it finishes has its catalog row, so after any
crash the job knows exactly which images are still to make: ``missing_indices``. Image ``i`` always
has seed ``base_seed + i`` and the file name ``{run:05d}-{i:02d}-{seed}.png``, so a re-run of an
interrupted image gives the same pixels under the same name.

States: queued -> running -> done | failed | cancelled | interrupted. A job whose program stopped
before it finished is 'interrupted': stopped by Ctrl-C, or left 'running' by a process that no
longer exists (``recover`` finds those). Nothing picks an interrupted job up by itself, neither
another run nor a server's queue: it is resumed when asked (``resume``, `steady resume RUN`),
with the same seeds, making only its missing images. ``strikes`` counts the tries of the job's
next image that ended with its worker (or the whole program) dead, and is cleared when the
worker answers; a job whose program died MAX_TRIES_PER_IMAGE times on one image ends 'failed'
instead of interrupted, so an input that kills its worker is not retried forever.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.catalog.db import Catalog, insert_run, now_iso
from steady.errors import BadInput
from steady.params import GenerationRequest, ImageParams
from steady.request.check import Resolved
from steady.request.planner import Plan

JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
MAX_TRIES_PER_IMAGE = 3  # tries of one image that may end with its worker or the program dead
FINAL_STATES = ("done", "failed", "cancelled", "interrupted")  # no program is working on it
RESUMABLE_STATES = ("interrupted", "cancelled", "failed", "queued")


@dataclass
class JobRecord:
    id: int
    run_id: int
    state: str
    base_seed: int
    n_images: int
    model_path: str
    out_dir: str
    params: dict[str, Any]  # ImageParams of image 0 (seed = base_seed); other images differ by seed
    plan: Plan | None  # the memory plan (None: the worker's defaults)
    attempts: int
    recycles: int
    error: str
    owner_pid: int
    created_at: str
    updated_at: str
    stop_rule: dict[str, Any] | None = None  # steady.scoring.novelty.SaturationRule.to_dict(): --until-saturated
    variants: dict[str, Any] | None = None  # {"axes": [Axis...], "variants": [Variant...]} (steady.prompts.variants)
    strikes: int = 0  # tries of its next image that ended with the worker or the program dead

    def seed_of(self, index: int) -> int:
        return (self.base_seed + index) % 2**32

    def image_params(self, index: int) -> ImageParams:
        overrides = self.variants["variants"][index]["overrides"] if self.variants else {}
        return ImageParams.from_dict({**self.params, "seed": self.seed_of(index), **overrides})

    def image_path(self, index: int) -> Path:
        seed = self.image_params(index).seed  # None: an upscale of an image that does not say its seed
        return Path(self.out_dir) / (f"{self.run_id:05d}-{index:02d}-{seed}.png" if seed is not None
                                     else f"{self.run_id:05d}-{index:02d}.png")  # fmt: skip


_COLUMNS = ("id, run_id, state, base_seed, n_images, model_path, out_dir, params_json, plan_json, attempts, "
            "recycles, error, owner_pid, created_at, updated_at, stop_rule_json, variants_json, strikes")  # fmt: skip


def _record(row: tuple[Any, ...]) -> JobRecord:
    (id_, run_id, state, seed, n, model_path, out_dir, params, plan, attempts, recycles, error, owner,
     created, updated, stop_rule, variants, strikes) = row  # fmt: skip
    return JobRecord(id_, run_id, state, seed, n, model_path, out_dir, json.loads(params),
                     Plan.from_dict(json.loads(plan)) if plan else None, attempts, recycles, error, owner, created, updated,
                     json.loads(stop_rule) if stop_rule else None, json.loads(variants) if variants else None,
                     strikes)  # fmt: skip


class JobQueue:
    """The jobs table, through an open ``Catalog`` (one connection, its lock and transactions)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def enqueue(self, resolved: Resolved, stop_rule: dict[str, Any] | None = None, claim: bool = False) -> JobRecord:
        """Record a run (status 'queued') and its job. ``claim``: the caller runs it itself, so it
        is 'running' and owned by this process from the start (another process's queue, e.g.
        `steady serve`, never sees it queued)."""
        request = resolved.request
        variants = None
        if resolved.variants:
            variants = {"axes": [a.to_dict() for a in resolved.axes], "variants": [v.to_dict() for v in resolved.variants]}
        params = resolved.base_params()  # each image's own are derived from it (image_params)
        return self.enqueue_params(request, params, str(resolved.model.path), str(resolved.out_dir), resolved.memory,
                                   stop_rule, variants, claim)  # fmt: skip

    def enqueue_params(self, request: GenerationRequest, params: ImageParams, model_path: str, out_dir: str,
                       plan: Plan | None = None, stop_rule: dict[str, Any] | None = None,
                       variants: dict[str, Any] | None = None, claim: bool = False) -> JobRecord:  # fmt: skip
        """Record a run of ``request.n_images`` images whose image 0 is made with ``params`` (its
        seed is the run's base seed), and its job; ``enqueue`` and upscale jobs
        (steady.jobs.upscale) write through here."""
        now = now_iso()
        with self.catalog.transaction() as conn:
            run_id = insert_run(conn, request, params.model_name, params.model_hash, "queued")
            row = conn.execute(
                "INSERT INTO jobs (run_id, state, base_seed, n_images, model_path, out_dir, params_json, plan_json,"
                " created_at, updated_at, stop_rule_json, variants_json)"
                " VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (run_id, params.seed, request.n_images, model_path, out_dir, json.dumps(params.to_dict()),
                 json.dumps(plan.to_dict()) if plan else None, now, now, json.dumps(stop_rule) if stop_rule else None,
                 json.dumps(variants) if variants else None),
            ).fetchone()  # fmt: skip
            if claim:
                self._set(conn, int(row[0]), "running")
        return self.get(int(row[0]))

    def get(self, job_id: int) -> JobRecord:
        with self.catalog.reading() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise BadInput("job_id", job_id, "no such job in the catalog")
        return _record(row)

    def jobs(self, states: tuple[str, ...] = JOB_STATES, limit: int = 100) -> list[JobRecord]:
        marks = ",".join("?" * len(states))
        with self.catalog.reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY id LIMIT ?", (*states, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def claim_next(self) -> JobRecord | None:
        """The oldest queued job, now 'running' and owned by this process; None when none waits."""
        with self.catalog.transaction() as conn:
            row = conn.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            self._set(conn, row[0], "running")
        return self.get(row[0])

    def claim(self, job_id: int) -> JobRecord:
        """This queued (or recovered) job, now 'running' and owned by this process."""
        with self.catalog.transaction() as conn:
            cur = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if cur is None or cur[0] != "queued":
                raise BadInput("job_id", job_id, f"cannot be started: it is {cur[0] if cur else 'missing'}")
            self._set(conn, job_id, "running")
        return self.get(job_id)

    def finish(self, job_id: int, state: str, error: str = "") -> None:
        if state not in FINAL_STATES:
            raise BadInput("state", state, "must be one of " + ", ".join(FINAL_STATES))
        with self.catalog.transaction() as conn:
            self._set(conn, job_id, state, error)

    def count(self, job_id: int, column: str) -> None:
        """Add one to ``attempts`` (a worker died on this job) or ``recycles``."""
        if column not in ("attempts", "recycles"):
            raise BadInput("column", column, "must be attempts or recycles")
        with self.catalog.transaction() as conn:
            conn.execute(f"UPDATE jobs SET {column} = {column} + 1, updated_at = ? WHERE id = ?", (now_iso(), job_id))

    def strike(self, job_id: int) -> int:
        """The worker died making the job's next image: one more strike (and attempt); the count."""
        with self.catalog.transaction() as conn:
            row = conn.execute("UPDATE jobs SET strikes = strikes + 1, attempts = attempts + 1, updated_at = ?"
                               " WHERE id = ? RETURNING strikes", (now_iso(), job_id)).fetchone()  # fmt: skip
        if row is None:
            raise BadInput("job_id", job_id, "no such job in the catalog")
        return int(row[0])

    def clear_strikes(self, job_id: int) -> None:
        """The worker answered for the job's image (made, refused or cancelled it): no strikes."""
        with self.catalog.transaction() as conn:
            conn.execute("UPDATE jobs SET strikes = 0 WHERE id = ? AND strikes > 0", (job_id,))

    def done_indices(self, job: JobRecord) -> set[int]:
        with self.catalog.reading() as conn:
            rows = conn.execute("SELECT idx FROM images WHERE run_id = ?", (job.run_id,)).fetchall()
        return {int(r[0]) for r in rows}

    def missing_indices(self, job: JobRecord) -> list[int]:
        done = self.done_indices(job)
        return [i for i in range(job.n_images) if i not in done]

    def recover(self, alive: Any = None) -> list[int]:
        """Mark jobs left 'running' by a dead process 'interrupted' (never queued again: resuming
        is explicit); returns their ids. ``alive(pid) -> bool`` defaults to psutil.pid_exists (this
        process counts as alive). The program ending while it made a job's image is a strike
        against that image: a job with MAX_TRIES_PER_IMAGE of them ends 'failed' instead, with a
        message that says why."""
        import psutil

        alive = alive or psutil.pid_exists
        interrupted: list[int] = []
        with self.catalog.transaction() as conn:
            rows = conn.execute("SELECT id, owner_pid FROM jobs WHERE state = 'running'").fetchall()
            lost = [jid for jid, pid in rows if pid != os.getpid() and not alive(pid)]
            for jid in lost:
                (strikes, run_id, n_images) = conn.execute(
                    "UPDATE jobs SET strikes = strikes + 1, updated_at = ? WHERE id = ? RETURNING strikes, run_id, n_images",
                    (now_iso(), jid)).fetchone()  # fmt: skip
                if strikes >= MAX_TRIES_PER_IMAGE:
                    done = {r[0] for r in conn.execute("SELECT idx FROM images WHERE run_id = ?", (run_id,))}
                    index = next((i for i in range(n_images) if i not in done), n_images)
                    self._set(conn, jid, "failed", f"image {index} of run {run_id} was tried {strikes} times and "
                              "its worker or the program died each time; it is not tried again")  # fmt: skip
                    continue
                self._set(conn, jid, "interrupted", "its program ended before the run finished")
                interrupted.append(jid)
        return interrupted

    def job_of_run(self, run_id: int) -> JobRecord:
        """The job that makes run ``run_id``; BadInput naming `run` when there is none."""
        with self.catalog.reading() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
            known = row is not None or conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            why = "has no job to resume (it was imported, or recovered from files)" if known else "no such run"
            raise BadInput("run", run_id, why)
        return _record(row)

    def resume(self, job_id: int) -> JobRecord:
        """This stopped job (interrupted, cancelled, failed or still queued), now 'running' and
        owned by this process, to make its missing images; BadInput naming `run` otherwise. Its
        strikes stay: an image that killed its worker before is not tried more times for it."""
        with self.catalog.transaction() as conn:
            row = conn.execute("SELECT state, owner_pid, run_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise BadInput("job_id", job_id, "no such job in the catalog")
            state, owner, run_id = row
            if state == "running":
                raise BadInput("run", run_id, f"is running (process {owner})")
            if state not in RESUMABLE_STATES:
                raise BadInput("run", run_id, f"is {state}: nothing to resume")
            self._set(conn, job_id, "running")
        return self.get(job_id)

    def requeue(self, job_id: int) -> None:
        """Put a job that was stopped by a shutdown (not by its user) back in the queue."""
        with self.catalog.transaction() as conn:
            self._set(conn, job_id, "queued")

    @staticmethod
    def _set(conn: Any, job_id: int, state: str, error: str = "") -> None:
        owner = os.getpid() if state == "running" else 0
        conn.execute("UPDATE jobs SET state = ?, error = ?, owner_pid = ?, updated_at = ? WHERE id = ?",
                     (state, error, owner, now_iso(), job_id))  # fmt: skip
        finished = now_iso() if state in FINAL_STATES else None
        conn.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = (SELECT run_id FROM jobs WHERE id = ?)",
                     (state, finished, job_id))  # fmt: skip
