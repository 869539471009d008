"""A real studio server (uvicorn on a free loopback port, a real worker process) for web tests.

    with running_server(home) as server:      # server.url, server.studio
        httpx.get(server.url + "/api/status")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from steady.config import Settings
from steady.jobs.supervisor import SupervisorOptions
from steady.web.app import create_app
from steady.web.security import Guard
from steady.web.studio import Studio, StudioOptions


@dataclass
class RunningServer:
    url: str
    port: int
    studio: Studio
    home: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def wait_job(self, job_id: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                state = client.get(f"/api/jobs/{job_id}").json()
                if state["state"] in ("done", "failed", "cancelled"):
                    return state
                time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(home: Path, guard: Guard | None = None, start_studio: bool = True,
                   supervisor: SupervisorOptions | None = None) -> Iterator[RunningServer]:  # fmt: skip
    """``supervisor``: its options (to inject a fault); previews on and one thread by default."""
    cfg = Settings(home=home)
    options = supervisor or SupervisorOptions(previews=True, threads=1)
    studio = Studio(cfg, StudioOptions(supervisor=options, plan_memory=True))
    app = create_app(studio, guard or Guard(), start_studio=start_studio)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", port, studio, home)
    finally:
        server.should_exit = True
        thread.join(30)
        studio.catalog.close()


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    """A studio whose generation thread is not started: for tests of what the app refuses or serves."""
    studio = Studio(Settings(home=tmp_path / "home"))
    yield studio
    studio.catalog.close()


@pytest.fixture
def client(studio: Studio) -> Iterator[TestClient]:
    """The real app over ``studio``, in process (TestClient), errors answered as a client sees them."""
    with TestClient(create_app(studio, Guard(), start_studio=False), base_url="http://127.0.0.1",
                    raise_server_exceptions=False) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("studio-home")) as running:
        yield running
