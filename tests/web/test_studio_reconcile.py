"""A running server repairs the catalog against the files now and then, not only when it starts:
a stale temp file left by a killed writer goes, a row whose file is gone goes."""

from __future__ import annotations

import os
import time

from steady.config import Settings
from steady.jobs.supervisor import SupervisorOptions
from steady.web.studio import Studio, StudioOptions


def test_an_idle_server_reconciles_periodically(tmp_path):
    cfg = Settings(home=tmp_path / "home")
    day = cfg.outputs_dir / "2026-12-06"
    day.mkdir(parents=True)
    stale = day / ".00001-00-1.png.0123abcd.tmp"
    stale.write_bytes(b"half a png")
    old = time.time() - 3600
    os.utime(stale, (old, old))  # left an hour ago by a writer that was killed
    fresh = day / ".00002-00-1.png.89abcdef.tmp"
    fresh.write_bytes(b"being written")  # someone may be writing this one now: left alone
    studio = Studio(cfg, StudioOptions(supervisor=SupervisorOptions(threads=1), idle_poll_s=0.05,
                                       reconcile_every_s=0.2))  # fmt: skip
    events: list[dict] = []
    publish = studio.hub.publish
    studio.hub.publish = lambda event: (events.append(event), publish(event))  # what the page would be told
    studio.start()
    try:
        deadline = time.monotonic() + 30
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not stale.exists() and fresh.exists()
    finally:
        studio.stop()
        studio.catalog.close()
    assert any(e.get("type") == "reconcile" and e["temp_files_removed"] == 1 for e in events), events
