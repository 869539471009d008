"""`steady bench`: per-image time and peak RSS of `steady generate` vs plain diffusers, one run."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("bench")
@click.option("-m", "--model", default="", help="Model name or path (default: the embedded model).")
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("-W", "--width", type=int, default=None)
@click.option("-H", "--height", type=int, default=None)
@click.option("-n", "--images", type=int, default=4, show_default=True, help="Timed images per side.")
@click.option("--sampler", default="Euler a", show_default=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON report here.")
def bench_command(model, steps, width, height, images, sampler, report) -> None:
    """Compare steady generate with a plain diffusers pipeline on the same model and settings."""
    from steady.bench import BenchSettings, run_bench
    from steady.params import GenerationRequest

    GenerationRequest(prompt="bench", steps=steps, width=width, height=height, sampler=sampler, n_images=images).check()
    result = run_bench(BenchSettings(model=model, steps=steps, width=width, height=height, images=images, sampler=sampler))
    p, s = result.plain, result.steady
    click.echo(f"plain diffusers : {p.median_seconds:.3f} s/image, peak RSS {p.peak_rss_bytes / 2**20:.0f} MiB, load {p.load_seconds:.1f} s")
    click.echo(f"steady generate : {s.median_seconds:.3f} s/image, peak RSS {s.peak_rss_bytes / 2**20:.0f} MiB, load {s.load_seconds:.1f} s")
    click.echo(
        f"overhead        : time {result.time_overhead:+.1%} (medians), {result.time_overhead_min:+.1%} (best images), "
        f"peak RSS {result.rss_overhead:+.1%}"
    )
    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=2))


def register(group: click.Group) -> None:
    group.add_command(bench_command)
