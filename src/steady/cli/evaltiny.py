"""`steady eval-tiny`: prompt adherence and variety of a model of the tiny-scene world.

Generates the fixed evaluation prompts (full captions of scenes from every held-out attribute
combination, plus scenes like the training ones) and 30 images of "a circle", through the same
load and render path as `steady generate` (nothing is written to the gallery), then scores
each image with the analytic checker and prints per-attribute accuracy against the targets.

    steady eval-tiny                       # the embedded model, 20 steps, CFG 5, Euler
    steady eval-tiny --json --sheet eval.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from steady.errors import BadInput


@click.command("eval-tiny")
@click.option("--model", default="", help="Model name or path (default: the embedded tiny model).")
@click.option("--steps", default=20, show_default=True, type=int)
@click.option("--cfg-scale", "cfg_scale", default=5.0, show_default=True, type=float)
@click.option("--sampler", default="Euler", show_default=True)
@click.option("--per-holdout", default=8, show_default=True, type=int, help="Prompts per held-out combination.")
@click.option("--seen", default=32, show_default=True, type=int, help="Prompts outside the held-out combinations.")
@click.option("--variety", "variety_n", default=30, show_default=True, type=int, help='Images of "a circle".')
@click.option("--sheet", type=click.Path(path_type=Path, dir_okay=False), help="Write a contact sheet PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_tiny_command(model: str, steps: int, cfg_scale: float, sampler: str, per_holdout: int,
                      seen: int, variety_n: int, sheet: Path | None, as_json: bool) -> None:  # fmt: skip
    """Score a tiny-world model's images against their prompts (per-attribute accuracy)."""
    import numpy as np

    from steady.engine import check_and_plan
    from steady.params import GenerationRequest
    from steady.tiny.evaluate import VARIETY_PROMPT, EvalPrompt, eval_prompts, format_report, score
    from steady.worker.direct import DirectRenderer

    for name, value, low in (("per-holdout", per_holdout, 0), ("seen", seen, 0), ("variety", variety_n, 0)):
        if value < low or value > 1000:
            raise BadInput(name, value, "must be between 0 and 1000")
    if per_holdout + seen == 0:
        raise BadInput("seen", seen, "there must be at least one prompt (--per-holdout or --seen)")
    request = GenerationRequest(prompt=VARIETY_PROMPT, steps=steps, cfg_scale=cfg_scale, sampler=sampler,
                                model=model).check()  # fmt: skip
    plan = check_and_plan(request)
    if plan.width != 64 or plan.height != 64:
        raise BadInput("model", model or "(default)", f"is not a 64x64 tiny-world model (native {plan.width})")
    renderer = DirectRenderer.load(request, plan)
    prompts = eval_prompts(per_holdout, seen)
    jobs = prompts + [EvalPrompt(VARIETY_PROMPT, seed, False) for seed in range(variety_n)]
    images, t0 = [], time.perf_counter()
    with click.progressbar(jobs, label="eval-tiny", file=click.get_text_stream("stderr")) as bar:
        for job in bar:
            images.append(np.asarray(renderer.image(job.prompt, job.seed).convert("RGB")))
    seconds = time.perf_counter() - t0
    report = score(prompts, images[: len(prompts)], images[len(prompts) :])
    if sheet:
        write_sheet(images, sheet)
    if as_json:
        payload = {"model": plan.model_name, "model_hash": plan.model_hash, "steps": steps,
                   "cfg_scale": cfg_scale, "sampler": request.sampler, "seconds_per_image": seconds / len(jobs),
                   **report.to_dict(), "misses": report.misses()}  # fmt: skip
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"model {plan.model_name} [{plan.model_hash}], {steps} steps, CFG {cfg_scale}, "
               f"{request.sampler}, {seconds / len(jobs):.3f} s/image on {plan.device}")  # fmt: skip
    click.echo(format_report(report))


def write_sheet(images: list, path: Path, columns: int = 16) -> Path:
    """All images in a grid (64 px each), written atomically."""
    from PIL import Image

    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * 64, max(1, rows) * 64), "white")
    for i, img in enumerate(images):
        grid.paste(Image.fromarray(img), ((i % columns) * 64, (i // columns) * 64))
    tmp = path.with_name(f".{path.name}.tmp")
    grid.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def register(group: click.Group) -> None:
    group.add_command(eval_tiny_command)
