"""`steady eval-tiny`: prompt adherence and variety of a model of the tiny-scene world.

Generates the fixed evaluation prompts (full captions of scenes from every held-out attribute
combination, plus scenes like the training ones) and 30 images of "a circle" through the same
path as `steady generate` (one run whose images each have their own prompt and seed, made by the
supervised worker into a scratch catalog: nothing reaches the gallery), then scores each image
with the analytic checker and prints per-attribute accuracy against the targets.

    steady eval-tiny                       # the embedded model, 20 steps, its CFG (5), Euler
    steady eval-tiny --json --sheet eval.png
    steady eval-tiny --set star --append " <lora:tiny-star:1>"   # 32 star prompts, with the shipped LoRA

``--set star|star-large|lime|aqua`` measures on 32 full captions of the extension the embedded model
never saw (steady.tiny.evaluate.extension_prompts) instead; ``--append`` adds text (a LoRA tag, say)
to every prompt as generated, while the checker reads the prompt without it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import click

from steady.cli.options import request_options
from steady.cli.progress import progress
from steady.errors import BadInput


@click.command("eval-tiny")
@request_options("model", "steps", "cfg_scale", "sampler", "dtype", "backend", sampler="Euler")
@click.option("--per-holdout", default=8, show_default=True, type=int, help="Prompts per held-out combination.")
@click.option("--seen", default=32, show_default=True, type=int, help="Prompts outside the held-out combinations.")
@click.option("--variety", "variety_n", default=30, show_default=True, type=int, help='Images of "a circle".')
@click.option("--set", "prompt_set", default="eval", show_default=True,
              type=click.Choice(["eval", "star", "star-large", "lime", "aqua"]),
              help="eval: the held-out and seen prompts; star, star-large, lime, aqua: 32 prompts of the extension.")
@click.option("--append", default="", help="Text added to every prompt as generated (e.g. ' <lora:tiny-star:1>').")
@click.option("--threads", default=0, show_default=True, type=int, help="Torch CPU threads (0: the planner's).")
@click.option("--sheet", type=click.Path(path_type=Path, dir_okay=False), help="Write a contact sheet PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_tiny_command(model: str, steps: int, cfg_scale: float | None, sampler: str, dtype: str, backend: str | None,
                      per_holdout: int, seen: int, variety_n: int, prompt_set: str, append: str, threads: int,
                      sheet: Path | None, as_json: bool) -> None:  # fmt: skip
    """Score a tiny-world model's images against their prompts (per-attribute accuracy)."""
    import numpy as np
    from PIL import Image

    from steady.config import settings
    from steady.jobs.protocol import ImageDone
    from steady.jobs.scratch import Scratch
    from steady.jobs.supervisor import SupervisorOptions
    from steady.params import GenerationRequest
    from steady.prompts.variants import Variant
    from steady.request.check import check
    from steady.tiny.evaluate import (
        VARIETY_PROMPT,
        EvalPrompt,
        eval_prompts,
        extension_prompts,
        format_report,
        score,
    )

    # 1. Check the arguments and the model (a 64x64 tiny-world model).
    for name, value, low in (("per-holdout", per_holdout, 0), ("seen", seen, 0), ("variety", variety_n, 0)):
        if value < low or value > 1000:
            raise BadInput(name, value, "must be between 0 and 1000")
    if per_holdout + seen == 0:
        raise BadInput("seen", seen, "there must be at least one prompt (--per-holdout or --seen)")
    check_threads(threads)
    cfg = settings()
    request = GenerationRequest(prompt=VARIETY_PROMPT, steps=steps, cfg_scale=cfg_scale, sampler=sampler, model=model,
                                dtype=dtype, backend=backend)  # fmt: skip
    resolved = check(request, cfg)
    if resolved.request.width != 64 or resolved.request.height != 64:
        raise BadInput("model", model or "(default)", f"is not a 64x64 tiny-world model (native {resolved.request.width})")
    # 2. One run, one image per (prompt, seed), through the worker.
    if prompt_set == "eval":
        prompts = eval_prompts(per_holdout, seen)
    else:
        prompts, variety_n = extension_prompts(prompt_set, seen), 0
    jobs = prompts + [EvalPrompt(VARIETY_PROMPT, seed, False) for seed in range(variety_n)]
    variants = tuple(Variant({"prompt": j.prompt + append, "seed": j.seed}) for j in jobs)
    bar = progress(len(jobs), "image", "eval-tiny")
    seconds: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, ImageDone):
            seconds.append(event.seconds)
            bar.update(1)

    options = SupervisorOptions(threads=threads or None, scorer="model")
    try:
        with Scratch(cfg, options) as scratch:
            made = scratch.run(dataclasses.replace(request, n_images=len(jobs)), variants, on_event)
            images = [np.asarray(Image.open(r.path).convert("RGB")) for r in made.images]
    finally:
        bar.close()
    # 3. Score with the analytic checker.
    report = score(prompts, images[: len(prompts)], images[len(prompts) :])
    if sheet:
        write_sheet(images, sheet)
    per_image = sum(seconds) / len(seconds)
    r = resolved.request
    if as_json:
        payload = {"set": prompt_set, "append": append, "model": resolved.model.name, "model_hash": resolved.model.hash, "steps": r.steps,
                   "cfg_scale": r.cfg_scale, "sampler": r.sampler, "dtype": resolved.dtype, "backend": r.backend, "seconds_per_image": per_image,
                   **report.to_dict(), "misses": report.misses()}  # fmt: skip
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"model {resolved.model.name} [{resolved.model.hash}], {r.steps} steps, CFG {r.cfg_scale}, "
               f"{r.sampler}, {per_image:.3f} s/image on {resolved.device}/{resolved.dtype}/{r.backend}"
               + (f"; set {prompt_set}, appended {append!r}" if prompt_set != "eval" or append else ""))  # fmt: skip
    click.echo(format_report(report))


def check_threads(threads: int) -> None:
    most = (os.cpu_count() or 1) * 4
    if not 0 <= threads <= most:
        raise BadInput("threads", threads, f"must be 0 (the planner's choice) or between 1 and {most}")


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
