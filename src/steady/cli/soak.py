"""`steady soak --images 1000`: a long session, measured (memory over time, recycles, losses).

    steady soak --images 1000                         # the embedded model, report in STEADY_HOME/soak/
    steady soak --images 60 --model a.safetensors --model b --width 256 --height 256 --steps 4
    steady soak --images 200 --per-job 5 --loras a,b,c,d   # each job the next LoRA of lora_dir, then none
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path

import click

from steady.errors import BadInput


@click.command("soak")
@click.option("--images", default=1000, show_default=True, type=int, help="Images in all.")
@click.option("--per-job", default=10, show_default=True, type=int, help="Images per job (run).")
@click.option("--model", "models", multiple=True, help="Model name or path; repeat to alternate models.")
@click.option("--loras", default="", help="LoRA names (lora_dir), comma-separated: each job takes the next, then one "
              "without, and round again.")
@click.option("--steps", default=20, show_default=True, type=int)
@click.option("--width", type=int)
@click.option("--height", type=int)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Report folder.")
@click.option("--rss-margin-mib", type=int, help="Recycle when worker RSS grew this much (default: policy).")
@click.option("--max-images-per-worker", type=int, help="Recycle after this many images (default: policy).")
def soak_command(images: int, per_job: int, models: tuple[str, ...], loras: str, steps: int, width: int | None,
                 height: int | None, out: Path | None, rss_margin_mib: int | None,
                 max_images_per_worker: int | None) -> None:  # fmt: skip
    """Generate IMAGES images in one long session and report memory, recycles and losses."""
    from steady.config import settings
    from steady.jobs.memory import MIB, RecyclePolicy
    from steady.jobs.soak import SoakConfig, run_soak

    if not 1 <= images <= 1_000_000:
        raise BadInput("images", images, "must be between 1 and 1000000")
    if not 1 <= per_job <= 100:
        raise BadInput("per-job", per_job, "must be between 1 and 100")
    policy = RecyclePolicy()
    if rss_margin_mib is not None:
        if rss_margin_mib < 1:
            raise BadInput("rss-margin-mib", rss_margin_mib, "must be at least 1")
        policy = dataclasses.replace(policy, rss_growth_fraction=0.0, rss_growth_min_bytes=rss_margin_mib * MIB)
    if max_images_per_worker is not None:
        if max_images_per_worker < 1:
            raise BadInput("max-images-per-worker", max_images_per_worker, "must be at least 1")
        policy = dataclasses.replace(policy, max_images=max_images_per_worker)
    cfg = settings()
    out = out or cfg.home / "soak" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    c = SoakConfig(images=images, per_job=per_job, models=list(models) or [""], steps=steps, width=width,
                   height=height, policy=policy, loras=[n.strip() for n in loras.split(",") if n.strip()])  # fmt: skip
    r = run_soak(c, out, cfg, echo=lambda s: click.echo(s, err=True))
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    click.echo(f"report: {out}")
    if r.jobs_lost or r.orphan_files or r.orphan_rows or r.temp_files:
        raise click.exceptions.Exit(1)


def register(group: click.Group) -> None:
    group.add_command(soak_command)
