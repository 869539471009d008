"""Nothing keeps running once cancelled, and no input is retried forever.

- a cancel sent right behind an image stops it (the worker must not lose it);
- a cancelled image whose worker dies is not made again;
- a cancelled image with no step to stop at (stalled as a huge prompt's encode stalls) ends when
  its worker is replaced, cancel_grace_s later;
- a program that dies while making a job's image is a strike against that image, counted on the
  job row: recover() marks the job interrupted twice (resumed only when asked), then fails it;
  strikes from before a restart count toward the worker's limit; the worker answering clears them.
Real worker processes (a tiny random-weight model), a real catalog, real killed processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steady.catalog import open_catalog
from steady.config import settings
from steady.jobs.protocol import Progress
from steady.jobs.queue import MAX_TRIES_PER_IMAGE, JobQueue
from steady.jobs.runner import prepare, submit
from steady.jobs.supervisor import Supervisor, SupervisorOptions, WorkerFailed
from steady.params import GenerationRequest
from tests.fixtures.tiny_models import save_tiny_folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_folder("sd1", tmp_path_factory.mktemp("m") / "tiny-sd1")


def _job(model: Path, n: int = 1, steps: int = 3):
    cfg = settings()
    request = GenerationRequest(prompt="a red circle", model=str(model), n_images=n, steps=steps, seed=11, sampler="Euler")
    with open_catalog(cfg.db_path) as cat:
        return submit(prepare(request, cfg), cat)


def _after_first_call() -> callable:
    """should_stop for run(): False when run() looks before the image, True from then on (the
    user cancels while the image is being made)."""
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 1

    return should_stop


def test_a_cancel_sent_right_behind_the_image_stops_it(model_dir: Path) -> None:
    with open_catalog(settings().db_path) as cat, Supervisor(cat, SupervisorOptions(threads=1)) as sup:
        sup.start_worker()  # warm: the second should_stop() call is the one right after the RenderImage
        for _ in range(3):  # the Cancel follows the RenderImage down the pipe at once: it must not be lost
            job = _job(model_dir, steps=60)
            outcome = sup.run(JobQueue(cat).claim(job.id), should_stop=_after_first_call())
            assert outcome.state == "cancelled" and outcome.images == []
            assert cat.images_of_run(job.run_id) == []


def test_a_cancelled_image_whose_worker_dies_is_not_made_again(model_dir: Path) -> None:
    """The user cancels, and the worker is killed (the OOM killer, say) before it answers."""
    job = _job(model_dir, steps=20)
    cancelled: list[bool] = []
    with open_catalog(settings().db_path) as cat:
        with Supervisor(cat, SupervisorOptions(threads=1)) as sup:

            def on_event(event: object) -> None:
                if isinstance(event, Progress) and not cancelled:
                    cancelled.append(True)
                    assert sup.worker is not None
                    os.kill(sup.worker.pid, signal.SIGKILL)

            outcome = sup.run(JobQueue(cat).claim(job.id), on_event, should_stop=lambda: bool(cancelled))
            deaths = len(sup.deaths)
        row = JobQueue(cat).get(job.id)
    assert outcome.state == "cancelled" and deaths == 1  # not restarted until "the worker died 3 times"
    assert row.state == "cancelled" and row.attempts == 1


def test_a_cancel_with_no_step_to_stop_at_replaces_the_worker(model_dir: Path, tmp_path: Path) -> None:
    job = _job(model_dir)
    marker = tmp_path / "stalling"
    options = SupervisorOptions(fault={"stall_at": [0], "stall_s": 60, "stall_marker": str(marker)}, threads=1,
                                cancel_grace_s=1.0)  # fmt: skip
    with open_catalog(settings().db_path) as cat, Supervisor(cat, options) as sup:

        def should_stop() -> bool:  # cancelled once the worker has loaded and stalls (however long the load took)
            return marker.exists()

        started = time.monotonic()
        outcome = sup.run(JobQueue(cat).claim(job.id), should_stop=should_stop)
        took = time.monotonic() - started
        assert outcome.state == "cancelled" and "replaced" in outcome.error and sup.worker is None
        assert JobQueue(cat).get(job.id).state == "cancelled"
    assert took < 30  # the stalled worker would have gone on for 60 s


def _die_while_running(job_id: int) -> None:
    """A real program claims the job and is killed (SIGKILL) while it holds it."""
    code = ("import sys, time\nfrom steady.catalog import open_catalog\nfrom steady.config import settings\n"
            "from steady.jobs.queue import JobQueue\ncat = open_catalog(settings().db_path)\n"
            f"JobQueue(cat).resume({job_id})\nprint('claimed', flush=True)\ntime.sleep(120)\n")  # fmt: skip
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) as program:
        assert program.stdout is not None and program.stdout.readline().strip() == "claimed"
        program.send_signal(signal.SIGKILL)
        program.wait(10)


def test_a_job_whose_program_keeps_dying_on_one_image_ends_failed(model_dir: Path) -> None:
    job = _job(model_dir, n=2)
    with open_catalog(settings().db_path) as cat:
        queue = JobQueue(cat)
        for tries in range(1, MAX_TRIES_PER_IMAGE):
            _die_while_running(job.id)
            assert queue.recover() == [job.id]
            assert queue.get(job.id).state == "interrupted" and queue.get(job.id).strikes == tries
        _die_while_running(job.id)
        assert queue.recover() == []  # the third death: not interrupted (resumable) but failed
        row = queue.get(job.id)
        assert row.state == "failed" and row.strikes == MAX_TRIES_PER_IMAGE
        assert "image 0 of run" in row.error and "not tried again" in row.error
        assert cat.get_run(job.run_id).status == "failed"
        assert queue.jobs(("queued", "running")) == []


def test_strikes_before_a_restart_count_toward_the_workers_limit(model_dir: Path) -> None:
    job = _job(model_dir)
    with open_catalog(settings().db_path) as cat:
        queue = JobQueue(cat)
        for _ in range(MAX_TRIES_PER_IMAGE - 1):
            _die_while_running(job.id)
            queue.recover()
        with Supervisor(cat, SupervisorOptions(fault={"die_at": [0]}, threads=1)) as sup:
            with pytest.raises(WorkerFailed, match=r"died 3 times on image 0 .*\(2 of them before a restart\)"):
                sup.run(queue.resume(job.id))
            assert len(sup.deaths) == 1  # one more death was all it took
        row = queue.get(job.id)
    assert row.state == "failed" and row.attempts == 1 and row.strikes == MAX_TRIES_PER_IMAGE


def test_the_worker_answering_clears_the_strikes(model_dir: Path) -> None:
    job = _job(model_dir, n=2)
    with open_catalog(settings().db_path) as cat:
        queue = JobQueue(cat)
        for _ in range(MAX_TRIES_PER_IMAGE - 1):
            _die_while_running(job.id)
            queue.recover()
        with Supervisor(cat, SupervisorOptions(threads=1)) as sup:
            outcome = sup.run(queue.resume(job.id))
        row = queue.get(job.id)
    assert outcome.state == "done" and len(outcome.images) == 2
    assert row.state == "done" and row.strikes == 0 and row.attempts == 0
