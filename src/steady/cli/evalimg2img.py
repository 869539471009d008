"""`steady eval-img2img`: what img2img, inpainting and hires fix do on a model of the tiny-scene world.

Ground-truth scenes (steady.tiny.data: a shape of a colour, size and position on a background)
are the init images; the analytic checker (steady.tiny.checker) reads the results. Every image
is made through the same path as `steady generate` (checked, planned, queued, rendered by the
supervised worker) into a scratch catalog: nothing reaches the gallery.

    img2img     the prompt asks for another colour (then another shape) of the same scene:
                per strength, the share of images where the checker reads the asked attribute,
                and where it still reads the init image's position; strength 0: the mean
                absolute difference to the init image (the VAE's round trip)
    inpainting  a mask over the shape (its box, 4 px wider), the prompt asks for another colour:
                mean absolute difference to the init image outside the mask less its blur band,
                and the share reading the asked colour
    hires fix   full captions at 64x64, then with --hires-scale 2 (latent, 0.7), read at 64x64
                (the 128x128 result reduced by Lanczos): per-attribute accuracy of each

    steady eval-img2img                    # the embedded model, 32 scenes, 20 steps, Euler
    steady eval-img2img --json
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import click

from steady.cli.options import request_options
from steady.errors import BadInput

STRENGTHS = (0.3, 0.5, 0.75, 0.9)
MASK_MARGIN = 4  # pixels the inpainting mask reaches past the shape's box
BLUR_BAND = 2 * int(2.5 * 4 + 0.5) + 1  # how far A1111's mask blur (4) reaches: left out of "outside"


@click.command("eval-img2img")
@request_options("model", "steps", "cfg_scale", "sampler", sampler="Euler")
@click.option("--scenes", "n", default=32, show_default=True, type=click.IntRange(1, 1000), help="Scenes per measure.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the scenes and the images.")
@click.option("--only", type=click.Choice(["img2img", "inpainting", "hires"]), help="Measure this part alone.")
@request_options("hires_upscaler", "hires_strength")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_img2img_command(model: str, steps: int, cfg_scale: float | None, sampler: str, n: int, seed: int,
                         only: str | None, hires_upscaler: str, hires_strength: float, as_json: bool) -> None:  # fmt: skip
    """Measure img2img (per strength), inpainting and hires fix against the tiny world's checker."""
    from steady.cli.evaltiny import check_threads
    from steady.cli.progress import progress
    from steady.config import settings
    from steady.jobs.protocol import ImageDone
    from steady.jobs.scratch import Scratch
    from steady.jobs.supervisor import SupervisorOptions
    from steady.params import GenerationRequest
    from steady.request.check import check

    check_threads(0)
    cfg = settings()
    base = GenerationRequest("a circle", steps=steps, cfg_scale=cfg_scale, sampler=sampler, model=model)
    if check(base, cfg).request.width != 64:
        raise BadInput("model", model or "(default)", "is not a 64x64 tiny-world model")
    cases = _cases(n, seed)
    parts = (only,) if only else ("img2img", "inpainting", "hires")
    total = n * ((2 * len(STRENGTHS) + 1 if "img2img" in parts else 0) + ("inpainting" in parts) + 2 * ("hires" in parts))
    bar = progress(total, "image", "eval-img2img")

    def on_event(event: object) -> None:
        if isinstance(event, ImageDone):
            bar.update(1)

    figures: dict[str, Any] = {"scenes": n, "steps": steps, "sampler": sampler}
    try:
        with Scratch(cfg, SupervisorOptions(scorer="model")) as scratch:
            inputs = scratch.folder / "inputs"

            def made(kind: str, **kw: Any) -> list[Any]:
                return _run(scratch, base, cases, kind, inputs, on_event, **kw)

            if "img2img" in parts:
                figures["img2img"] = {}
                for attribute in ("colour", "shape"):
                    rows = {}
                    for strength in STRENGTHS:
                        images = made(attribute, strength=strength)
                        rows[str(strength)] = _rates(images, cases, attribute)
                    figures["img2img"][attribute] = rows
                kept = made("colour", strength=0.0)
                figures["strength_0_mad"] = _mean([_mad(img, c["init"]) for img, c in zip(kept, cases, strict=True)])
            if "inpainting" in parts:
                painted = made("colour", strength=0.75, mask=True)
                figures["inpainting"] = {
                    "outside_mad": max(_mad(img, c["init"], c["outside"]) for img, c in zip(painted, cases, strict=True)),
                    **_rates(painted, cases, "colour"),
                }
            if "hires" in parts:
                first = made("caption", strength=None)
                second = made("caption", strength=None, hires={"hires_scale": 2.0, "hires_upscaler": hires_upscaler,
                                                                "hires_strength": hires_strength})  # fmt: skip
                figures["hires"] = {"upscaler": hires_upscaler, "strength": hires_strength,
                                    "first": _accuracy(first, cases), "hires": _accuracy(second, cases)}
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(_report(figures))


def _cases(n: int, seed: int) -> list[dict[str, Any]]:
    """n scenes with a colour and a shape to ask for instead, their captions and masks."""
    import numpy as np

    from steady.tiny.data import coverage, render, sample_scene
    from steady.tiny.scenes import COLOUR_NAMES, SHAPES, position_phrase

    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        scene = sample_scene(rng)
        colour = str(rng.choice([c for c in COLOUR_NAMES if c not in (scene.colour, scene.background)]))
        shape = str(rng.choice([s for s in SHAPES if s != scene.shape]))
        where = position_phrase(scene.position)

        def says(c: str, s: str) -> str:
            return f"a {scene.size} {c} {s} {where} on a {scene.background} background"

        box = coverage(scene.shape, scene.cx, scene.cy, scene.scale) > 0
        ys, xs = np.nonzero(box)
        mask = np.zeros((64, 64), dtype=np.uint8)
        m = MASK_MARGIN
        mask[max(0, ys.min() - m): ys.max() + m + 1, max(0, xs.min() - m): xs.max() + m + 1] = 255
        band = BLUR_BAND
        near = np.zeros((64, 64), dtype=bool)
        near[max(0, ys.min() - m - band): ys.max() + m + band + 1, max(0, xs.min() - m - band): xs.max() + m + band + 1] = True
        cases.append({"scene": scene, "init": render(scene), "mask": mask, "outside": ~near,
                      "prompts": {"colour": says(colour, scene.shape), "shape": says(scene.colour, shape),
                                  "caption": says(scene.colour, scene.shape)},
                      "asked": {"colour": colour, "shape": shape}})  # fmt: skip
    return cases


def _run(scratch: Any, base: Any, cases: list[dict[str, Any]], kind: str, inputs: Any, on_event: Any, *,
         strength: float | None, mask: bool = False, hires: dict[str, Any] | None = None) -> list[Any]:  # fmt: skip
    """One run: image i from case i's init image (and mask) with its prompt for ``kind``; the images as arrays."""
    import numpy as np
    from PIL import Image

    from steady.images.inputs import store_bytes
    from steady.params import Source
    from steady.prompts.variants import Variant

    variants = []
    for i, case in enumerate(cases):
        overrides: dict[str, Any] = {"prompt": case["prompts"][kind], "seed": i}
        if strength is not None:
            init = store_bytes(_png(case["init"]), inputs, "init_image")
            stored_mask = store_bytes(_png(case["mask"]), inputs, "mask") if mask else None
            overrides["source"] = Source(image=init.path, image_hash=init.sha256, strength=strength,
                                         mask=stored_mask.path if stored_mask else "",
                                         mask_hash=stored_mask.sha256 if stored_mask else "").to_dict()  # fmt: skip
        variants.append(Variant(overrides))
    request = dataclasses.replace(base, n_images=len(cases), width=64, height=64,
                                  **(hires or {}))  # fmt: skip
    result = scratch.run(request, tuple(variants), on_event)
    images = []
    for r in result.images:
        image = Image.open(r.path).convert("RGB")
        images.append(np.asarray(image.resize((64, 64), Image.Resampling.LANCZOS) if image.size != (64, 64) else image))
    return images


def _png(array: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _rates(images: list[Any], cases: list[dict[str, Any]], attribute: str) -> dict[str, float]:
    """The share of images with the asked ``attribute``, and with the init image's position kept."""
    from steady.tiny.checker import analyse

    read = [analyse(img) for img in images]
    asked = [getattr(r, attribute) == c["asked"][attribute] for r, c in zip(read, cases, strict=True)]
    kept = [r.position == c["scene"].position for r, c in zip(read, cases, strict=True)]
    return {"asked": _mean(asked), "position_kept": _mean(kept)}


def _accuracy(images: list[Any], cases: list[dict[str, Any]]) -> dict[str, float]:
    from steady.tiny.checker import check
    from steady.tiny.scenes import ATTRIBUTES

    results = [check(img, c["prompts"]["caption"]) for img, c in zip(images, cases, strict=True)]
    return {a: _mean([bool(r.correct.get(a)) for r in results]) for a in ATTRIBUTES}


def _mad(image: Any, init: Any, where: Any = None) -> float:
    """Mean absolute difference in 0-255 levels (over ``where`` when given)."""
    import numpy as np

    diff = np.abs(image.astype(np.float64) - init.astype(np.float64))
    return float(diff[where].mean() if where is not None else diff.mean())


def _mean(values: list[Any]) -> float:
    return round(float(sum(values)) / len(values), 4) if values else float("nan")


def _report(f: dict[str, Any]) -> str:
    lines = [f"{f['scenes']} scenes, {f['steps']} steps, {f['sampler']}"]
    if "img2img" in f:
        lines += ["", "img2img: asked attribute read / position kept, per strength"]
        for attribute, rows in f["img2img"].items():
            cells = "  ".join(f"{s}: {r['asked']:.0%} / {r['position_kept']:.0%}" for s, r in rows.items())
            lines.append(f"  {attribute:<7} {cells}")
        lines.append(f"  strength 0: mean absolute difference to the init image {f['strength_0_mad']:.2f} / 255")
    if "inpainting" in f:
        p = f["inpainting"]
        lines += ["", f"inpainting (colour): outside the mask, largest mean absolute difference {p['outside_mad']:.2f} "
                      f"/ 255; asked colour read {p['asked']:.0%}, position kept {p['position_kept']:.0%}"]  # fmt: skip
    if "hires" in f:
        h = f["hires"]
        lines += ["", f"hires fix 64 -> 128 by {h['upscaler']} at {h['strength']} (read at 64): attribute  first  hires"]
        for a, first in h["first"].items():
            lines.append(f"  {a:<11} {first:.0%}  {h['hires'][a]:.0%}")
    return "\n".join(lines)


def register(group: click.Group) -> None:
    group.add_command(eval_img2img_command)
