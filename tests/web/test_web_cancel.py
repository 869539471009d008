"""A cancel through the API stops a running image, even one with no step to stop at (stalled as
a huge prompt's encode stalls), and the queue behind it goes on. A real server, a real worker."""

from __future__ import annotations

import time
from pathlib import Path

from steady.jobs.supervisor import SupervisorOptions
from tests.web.conftest import running_server


def test_cancel_stops_a_stalled_image_and_the_next_job_runs(tmp_path: Path) -> None:
    # Every first image stalls 6 s before its first step; a cancel gives the worker 1 s.
    marker = tmp_path / "stalling"  # the worker writes it as its stall begins (the model is loaded)
    options = SupervisorOptions(threads=1, cancel_grace_s=1.0,
                                fault={"stall_at": [0], "stall_s": 6, "stall_marker": str(marker)})
    with running_server(tmp_path / "home", supervisor=options) as server, server.client() as client:
        stalled = client.post("/api/generate", json={"prompt": "a white square", "steps": 2}).json()
        after = client.post("/api/generate", json={"prompt": "a black square", "steps": 2, "seed": 3}).json()
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker starts (it imports torch), loads the model, then stalls
        assert marker.exists(), "the worker never began its stall"
        asked = time.monotonic()
        assert client.post(f"/api/jobs/{stalled['job_id']}/cancel").json() == {"cancelled": [stalled["job_id"]]}
        state = server.wait_job(stalled["job_id"], timeout=60)
        assert state["state"] == "cancelled" and state["image_ids"] == []
        assert time.monotonic() - asked < 4  # not the 5.5 s left of the stall
        assert "replaced" in state["error"]
        done = server.wait_job(after["job_id"], timeout=120)
        assert done["state"] == "done" and len(done["image_ids"]) == 1
