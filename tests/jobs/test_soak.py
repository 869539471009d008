"""A short soak end to end: two alternating models (every switch recycles the worker), reports."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from steady.cli import _register_all, cli
from steady.jobs.soak import rss_drift
from tests.fixtures.tiny_models import save_tiny_folder


def test_short_soak_with_model_switches(tmp_path: Path) -> None:
    a = save_tiny_folder("sd1", tmp_path / "a", seed=0)
    b = save_tiny_folder("sd1", tmp_path / "b", seed=1)
    out = tmp_path / "report"
    _register_all()
    result = CliRunner().invoke(cli, ["soak", "--images", "6", "--per-job", "2", "--model", str(a), "--model",
                                      str(b), "--steps", "2", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 6 and report["jobs"] == 3
    assert report["jobs_lost"] == 0 and report["orphan_files"] == 0 and report["orphan_rows"] == 0
    assert report["temp_files"] == 0
    assert [r["reason"].split(" (")[0] for r in report["recycles"]] == ["model switch", "model switch"]
    assert len(list((out / "images").glob("*.png"))) == 6
    assert (out / "memory.png").stat().st_size > 1000
    lines = (out / "images.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("n,t,job_id")
    assert "jobs lost: 0" in (out / "report.md").read_text()


def test_drift_compares_the_last_100_with_images_50_to_150() -> None:
    assert rss_drift([100] * 249) == (None, None, None)
    flat = [1000] * 300
    assert rss_drift(flat) == (0.0, 1000, 1000)
    growing = [1000] * 150 + [1100] * 150
    assert rss_drift(growing) == (10.0, 1000, 1100)


def test_bad_arguments_are_refused_naming_them(tmp_path: Path) -> None:
    _register_all()
    result = CliRunner().invoke(cli, ["soak", "--images", "0"], standalone_mode=False)
    assert isinstance(result.exception, Exception) and "images=0" in str(result.exception)
