"""`steady bench` really runs both sides and reports comparable figures."""

import math

from steady.config import settings
from steady.jobs.bench import BenchSettings, run_bench


def test_bench_runs_both_sides(tmp_path):
    from tests.fixtures.tiny_models import save_tiny_folder

    model = save_tiny_folder("sd1", tmp_path / "tiny")
    report = run_bench(BenchSettings(model=str(model), steps=2, width=32, height=32, images=2), settings())
    for side in (report.plain, report.steady):
        assert len(side.seconds_per_image) == 2
        assert all(t > 0 for t in side.seconds_per_image)
        assert side.peak_rss_bytes > 50 * 2**20  # torch alone is more than this
    assert all(math.isfinite(x) for x in (report.time_overhead, report.time_overhead_min, report.rss_overhead))
    assert report.to_dict()["settings"]["steps"] == 2


def test_the_cpu_suite_compares_float32_with_auto_and_the_ceiling():
    """`steady bench --suite cpu` on the embedded model alone (steps kept small): both rows ran
    through the real path, in the dtype auto picks here, with s/step, TFLOP/s and the ceiling."""
    from steady.jobs.bench import run_suite
    from steady.request.devices import native_bf16

    report = run_suite(settings(), steps=3, echo=lambda line: None)
    assert report.matmul_tflops["float32"] > 0 and report.matmul_tflops["bfloat16"] > 0
    assert [(r.model, r.side, r.asked) for r in report.rows] == [("embedded", 64, "float32"), ("embedded", 64, "auto")]
    assert report.rows[1].dtype == ("bfloat16" if native_bf16() else "float32")
    for row in report.rows:
        assert row.seconds_per_step > 0 and row.seconds_per_image > row.seconds_per_step
        assert row.step_tflops > 0 and 0 < row.of_ceiling < 5 and row.peak_rss_bytes > 100 * 2**20
    (speed,) = report.speedups()
    assert speed[:2] == ("embedded", 64) and speed[2] > 0
    assert "| embedded | 64² | auto |" in report.markdown()
