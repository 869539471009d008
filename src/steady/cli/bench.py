"""`steady bench`: per-image time and peak RSS of `steady generate` vs plain diffusers, one run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from steady.cli.options import request_options
from steady.errors import BadInput
from steady.params import GenerationRequest


@click.command("bench")
@request_options("model", "steps", "width", "height", "sampler", "backend")
@click.option("-n", "--images", type=click.IntRange(1, 100), default=4, show_default=True, help="Timed images per side.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON report here.")
@click.option("--suite", type=click.Choice(["cpu"]), default=None,
              help="cpu: float32 against --dtype auto for the embedded model and --model at --sizes, with this "
                   "CPU's matmul ceiling and, as the floor for overhead, auto's settings in a plain diffusers "
                   "loop (a markdown table; minutes for a full-size model); with --backend openvino, a row of "
                   "--dtype auto on OpenVINO too.")
@click.option("--sizes", default="256,512", show_default=True, help="With --suite: square sizes for --model.")
def bench_command(model, steps, width, height, images, sampler, report, suite, sizes, backend) -> None:
    """Compare steady generate's path (worker, PNG, score, catalog row) with a plain diffusers loop."""
    from steady.config import settings
    from steady.jobs.bench import BenchSettings, run_bench, run_suite

    if suite == "cpu":
        try:
            sides = tuple(int(v) for v in sizes.split(","))
        except ValueError as exc:
            raise BadInput("sizes", sizes, "must be whole numbers separated by commas, e.g. 256,512") from exc
        for side in sides:
            GenerationRequest(prompt="x", width=side, height=side).validate()
        result = run_suite(settings(), model, sides, steps=steps, echo=lambda line: click.echo(line, err=True),
                           openvino=backend == "openvino")  # fmt: skip
        click.echo(result.markdown())
        if report is not None:
            report.write_text(json.dumps(result.to_dict(), indent=2))
        return

    if backend == "openvino":
        raise BadInput("backend", backend, "is measured by --suite cpu (a row beside torch's)")
    result = run_bench(BenchSettings(model=model, steps=steps, width=width, height=height, images=images,
                                     sampler=sampler), settings())  # fmt: skip
    p, s = result.plain, result.steady
    click.echo(f"plain diffusers : {p.median_seconds:.3f} s/image, peak RSS {p.peak_rss_bytes / 2**20:.0f} MiB, load {p.load_seconds:.1f} s")
    click.echo(f"steady generate : {s.median_seconds:.3f} s/image, peak RSS {s.peak_rss_bytes / 2**20:.0f} MiB, load {s.load_seconds:.1f} s")
    click.echo(
        f"overhead        : time {result.time_overhead:+.1%} (medians), {result.time_overhead_min:+.1%} (best images), "
        f"peak RSS {result.rss_overhead:+.1%}"
    )
    click.echo(f"of which scoring : {s.score_seconds:.3f} s/image; without it the time overhead is "
               f"{result.time_overhead_unscored:+.1%}")  # fmt: skip
    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=2))


def register(group: click.Group) -> None:
    group.add_command(bench_command)
