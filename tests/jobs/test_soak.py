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


def test_lora_switching_soak_short(tmp_path: Path) -> None:
    """The LoRA-switching soak, short: the embedded model, jobs cycling through two LoRAs and none;
    every image records the LoRA its job named, the worker is not recycled, and its RSS does not
    climb (the figure itself, 200 images and < 2 %, is in docs/benchmarks.md)."""
    from steady.config import settings
    from steady.images.pngmeta import read_png_info
    from tests.fixtures.loras import save_tiny_lora

    for i, name in enumerate(("ember-a", "ember-b")):
        save_tiny_lora("embedded", settings().lora_dir / f"{name}.safetensors", seed=i, parts=("unet", "text_encoder"))
    out = tmp_path / "report"
    _register_all()
    result = CliRunner().invoke(cli, ["soak", "--images", "40", "--per-job", "2", "--loras", "ember-a,ember-b",
                                      "--steps", "2", "--width", "64", "--height", "64", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 40 and report["jobs_lost"] == 0 and report["recycles"] == []
    assert report["rss_drift_percent"] is not None and report["rss_drift_percent"] < 5.0
    rows = (out / "images.csv").read_text().splitlines()[1:]
    by_job: dict[str, list[str]] = {}
    for png in sorted((out / "images").glob("*.png")):
        text = read_png_info(png).parameters_text
        by_job.setdefault(png.name.split("-")[0], []).append(text)
    named = [("ember-a" in t[0], "ember-b" in t[0], "Lora hashes" in t[0]) for _, t in sorted(by_job.items())]
    assert named[:3] == [(True, False, True), (False, True, True), (False, False, False)]
    assert len(rows) == 40
