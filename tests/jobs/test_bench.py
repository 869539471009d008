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
