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
    through the real path, in the dtype auto picks here, with s/step, TFLOP/s and the ceiling; and
    the floor for overhead, auto's settings in a plain diffusers loop, ran in its own process."""
    from steady.jobs.bench import run_suite
    from steady.request.devices import native_bf16

    report = run_suite(settings(), steps=3, echo=lambda line: None)
    assert report.matmul_tflops["float32"] > 0 and report.matmul_tflops["bfloat16"] > 0
    assert [(r.model, r.side, r.asked, r.backend) for r in report.rows] == [
        ("embedded", 64, "float32", "torch"), ("embedded", 64, "auto", "torch"), ("embedded", 64, "auto", "plain")]
    assert report.rows[1].dtype == report.rows[2].dtype == ("bfloat16" if native_bf16() else "float32")
    plain = report.rows[2]
    assert plain.seconds_per_step is None and plain.seconds_per_image > 0 and plain.peak_rss_bytes > 100 * 2**20
    assert 0 < report.rows[1].score_seconds < report.rows[1].seconds_per_image
    assert "steady's path over a plain diffusers loop (auto), embedded 64²:" in report.markdown()
    for row in report.rows[:2]:
        assert row.seconds_per_step > 0 and row.seconds_per_image > row.seconds_per_step
        assert row.step_tflops > 0 and 0 < row.of_ceiling < 5 and row.peak_rss_bytes > 100 * 2**20
    (speed,) = report.speedups()
    assert speed[:2] == ("embedded", 64) and speed[2] > 0
    assert "| embedded | 64² | auto |" in report.markdown()


def test_the_cpu_suite_puts_an_openvino_row_beside_torch():
    """With --backend openvino the suite has a row of --dtype auto on OpenVINO, compared with
    torch's auto row of the same model and size (the report's arithmetic; the rows themselves run
    through the path `steady generate` takes, which tests/worker/test_openvino_unet.py covers)."""
    from steady.jobs.bench import SuiteReport, SuiteRow

    rows = [SuiteRow("sd15", 512, "float32", "float32", 8, 6.0, 60.0, 4.0, 6 * 2**30),
            SuiteRow("sd15", 512, "auto", "bfloat16", 8, 2.0, 24.0, 4.0, 3 * 2**30, score_seconds=2.0),
            SuiteRow("sd15", 512, "auto", "bfloat16", 8, 1.6, 20.0, 4.0, 5 * 2**30, backend="openvino",
                     first_image_seconds=90.0),
            SuiteRow("sd15", 512, "auto", "bfloat16", 8, None, 20.0, 4.0, 3 * 2**30, backend="plain")]  # fmt: skip
    text = SuiteReport(2, {"float32": 0.3, "bfloat16": 1.7}, rows).markdown()
    assert "| sd15 | 512² | auto | bfloat16 | openvino | 8 | 1.600 | 20.00 |" in text and "| 90.0 |" in text
    assert "openvino over torch (auto), sd15 512²: 1.25× per step, 1.20× per image" in text
    assert text.count("auto over float32") == 1
    assert "| sd15 | 512² | auto | bfloat16 | plain | 8 | – | 20.00 |" in text
    assert "steady's path over a plain diffusers loop (auto), sd15 512²: +20.0% per image with its adherence " \
        "score, +10.0% without" in text
