"""How a `steady generate` run can end, and what is left: files and rows agree afterwards, the run
shows the right state, and a stopped run is resumed only when asked (`steady resume RUN`), with
the same seeds and no image made twice.

Real processes: the CLI in its own session (Ctrl-C reaches its whole process group, as in a
terminal), its real worker, the embedded model; signals sent as a user or the OOM killer would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from steady.catalog import open_catalog
from steady.config import settings
from steady.jobs.queue import JobQueue

# Images of about 2 s on the embedded model, so that a signal lands in the middle of one.
SLOW = ["-W", "128", "-H", "128", "--steps", "40", "--seed", "100"]


def _start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "steady", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def _steady(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "steady", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _first_image(program: subprocess.Popen[str]) -> dict:
    """Wait for the run's first image (a --json line), then into the second one."""
    assert program.stdout is not None
    line = program.stdout.readline()
    assert line, program.stderr.read() if program.stderr else ""
    time.sleep(0.8)
    return json.loads(line)


def _worker_of(program: subprocess.Popen[str]) -> psutil.Process:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(program.pid).children(recursive=True):
            if "spawn_main" in " ".join(child.cmdline()):
                return child
        time.sleep(0.1)
    raise AssertionError("no worker process")


def _gone(worker: psutil.Process, within: float = 15.0) -> bool:
    """True once the worker has exited. A SIGKILLed process with a large heap is still tearing down
    its memory (and reads as running) for a moment after its smaller parent is gone."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _files_and_rows(out_dir: Path) -> tuple[set[str], set[str], list[str]]:
    files = {str(p) for p in out_dir.glob("*.png")}
    temps = [p.name for p in out_dir.iterdir() if p.name.endswith(".tmp")]
    with open_catalog(settings().db_path) as cat, cat.reading() as conn:
        rows = {r[0] for r in conn.execute("SELECT path FROM images") if Path(r[0]).parent == out_dir}
    return files, rows, temps


def _run(run_id: int):
    with open_catalog(settings().db_path) as cat:
        job = next(j for j in JobQueue(cat).jobs(limit=1000) if j.run_id == run_id)
        return cat.get_run(run_id).status, job


def _resume_and_check(run_id: int, out_dir: Path, n: int) -> None:
    """`steady resume` makes exactly the missing images, with their own seeds: n images in all."""
    done = _steady("resume", str(run_id), "--json")
    assert done.returncode == 0, done.stderr
    files, rows, temps = _files_and_rows(out_dir)
    assert files == rows and not temps and len(files) == n
    status, job = _run(run_id)
    assert status == "done" and job.state == "done"
    with open_catalog(settings().db_path) as cat, cat.reading() as conn:
        seeds = sorted(r[0] for r in conn.execute("SELECT seed FROM images WHERE run_id = ?", (run_id,)))
    assert seeds == [100 + i for i in range(n)]
    again = _steady("resume", str(run_id))
    assert again.returncode == 2 and "is done" in again.stderr


@pytest.mark.timeout(300)
def test_ctrl_c_leaves_files_and_rows_agreeing_and_the_run_interrupted(tmp_path):
    out = tmp_path / "out"
    program = _start("generate", "a red circle", "-n", "4", *SLOW, "--json", "--out", str(out))
    first = _first_image(program)
    os.killpg(program.pid, signal.SIGINT)  # Ctrl-C in the terminal: the CLI and its worker
    _, err = program.communicate(timeout=120)
    assert program.returncode == 130, err
    assert "Traceback" not in err and f"steady resume {first['run_id']}" in err
    files, rows, temps = _files_and_rows(out)
    assert files == rows and not temps and 1 <= len(files) < 4
    status, job = _run(first["run_id"])
    assert status == "interrupted" and job.state == "interrupted"
    _resume_and_check(first["run_id"], out, 4)


@pytest.mark.timeout(300)
def test_a_second_ctrl_c_stops_the_worker_at_once_and_removes_its_image(tmp_path):
    out = tmp_path / "out"
    program = _start("generate", "a red circle", "-n", "4", *SLOW, "--json", "--out", str(out))
    first = _first_image(program)
    worker = _worker_of(program)
    os.killpg(program.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(program.pid, signal.SIGINT)
    _, err = program.communicate(timeout=60)
    assert program.returncode == 130 and "Traceback" not in err, err
    assert _gone(worker)
    files, rows, temps = _files_and_rows(out)
    assert files == rows and not temps
    status, job = _run(first["run_id"])
    assert status == "interrupted" and job.state == "interrupted"
    _resume_and_check(first["run_id"], out, 4)


@pytest.mark.timeout(300)
def test_a_killed_cli_run_is_interrupted_and_never_resumed_by_itself(tmp_path):
    out = tmp_path / "out"
    program = _start("generate", "a red circle", "-n", "4", *SLOW, "--json", "--out", str(out))
    first = _first_image(program)
    os.killpg(program.pid, signal.SIGKILL)
    program.communicate(timeout=60)
    run_id = first["run_id"]
    # The next command says so, once; another run, and a server's queue, leave it alone.
    other = _steady("generate", "a blue square", "-W", "64", "-H", "64", "--steps", "2", "--out", str(tmp_path), "-q")
    assert other.returncode == 0, other.stderr
    assert f"run {run_id} was interrupted" in other.stderr and f"steady resume {run_id}" in other.stderr
    listed = json.loads(_steady("history", "--json").stdout)
    assert [r["status"] for r in listed if r["id"] == run_id] == ["interrupted"]
    with open_catalog(settings().db_path) as cat:
        assert JobQueue(cat).claim_next() is None
    status, job = _run(run_id)
    assert status == "interrupted" and job.state == "interrupted"
    files, rows, temps = _files_and_rows(out)
    assert files == rows and not temps  # the startup check recorded or removed what the kill left
    with open_catalog(settings().db_path) as cat, cat.reading() as conn:
        made = conn.execute("SELECT COUNT(*) FROM images WHERE run_id = ?", (run_id,)).fetchone()[0]
    _resume_and_check(run_id, out, 4)
    assert made >= 1


@pytest.mark.timeout(300)
def test_a_killed_worker_is_replaced_and_the_run_completes(tmp_path):
    out = tmp_path / "out"
    program = _start("generate", "a red circle", "-n", "3", *SLOW, "--json", "--out", str(out))
    first = _first_image(program)
    _worker_of(program).send_signal(signal.SIGKILL)  # as the OOM killer would
    stdout, err = program.communicate(timeout=240)
    assert program.returncode == 0, err
    assert "the worker died" in err and len(stdout.splitlines()) == 2
    files, rows, temps = _files_and_rows(out)
    assert files == rows and not temps and len(files) == 3
    status, job = _run(first["run_id"])
    assert status == "done" and job.state == "done" and job.attempts == 1


def test_resume_refuses_what_it_cannot_resume(capsys):
    from tests.fixtures.cli import run_main

    code, out = run_main(["resume", "12345"], capsys)
    assert code == 2 and out.err.startswith("steady: error: run=12345: ") and len(out.err.splitlines()) == 1


@pytest.mark.timeout(300)
def test_a_killed_server_leaves_its_run_interrupted_and_resumable(tmp_path):
    """`steady serve` killed (SIGKILL) in the middle of a run that the page queued: its worker goes
    with it, the restarted server does not make the run's images again by itself, and `steady
    resume` makes exactly the missing ones."""
    import httpx

    from tests.web.conftest import free_port

    port = free_port()
    server = _start("serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/api/status", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    body = {"prompt": "a red circle", "n_images": 4, "width": 128, "height": 128, "steps": 40, "seed": 100}
    job = httpx.post(base + "/api/generate", json=body, timeout=30).json()
    run_id = job["run_id"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not httpx.get(f"{base}/api/jobs/{job['job_id']}", timeout=5).json()["image_ids"]:
        time.sleep(0.2)
    time.sleep(0.8)  # into the second image
    worker = _worker_of(server)
    os.killpg(server.pid, signal.SIGKILL)
    server.communicate(timeout=60)
    assert _gone(worker)
    assert _run(run_id)[0] == "running"  # nobody has looked yet
    history = _steady("history")  # the next command marks it and says so
    assert history.returncode == 0 and "interrupted" in history.stdout + history.stderr
    status, job_row = _run(run_id)
    assert status == "interrupted" and job_row.state == "interrupted"
    day = Path(job_row.out_dir)
    files, rows, temps = _files_and_rows(day)
    assert rows <= files and len(rows) < 4
    _resume_and_check(run_id, day, 4)
