"""Per-image record of eval-iterate's ranking runs, and what other scores or verdicts would give.

    python tools/ranking_dump.py --out build/ranking_dump.json          (seeds 0-19 as eval-iterate; ~2 min idle)
    python tools/ranking_dump.py --out build/ranking_s100.json --images 40 --seed-start 100   (fresh seeds)
    python tools/ranking_dump.py --analyse build/ranking_dump.json [build/ranking_s100.json ...]

For each of eval-iterate's ranking prompts and seeds: the checker's reading (every attribute,
whether the image counts as correct, every shape's misfit), the generating model's own adherence
score, the shipped judge's CLIP score, and the judge's logits for the prompt and for each one-word
swap of its shape, colour and size (a zero-shot classifier's view: is this prompt the best
description among its alternatives?). The reference is ground-truth scenes with the same named
attributes as the tiny VAE reconstructs them: how far a well-formed shape's best misfit goes.

--analyse prints top-3 precision over base rate (prompts with base rate <= 50 %, as eval-iterate)
for each score (model, judge, judge margin = prompt logit minus the best swap's) and two verdicts:
"lenient" is eval-iterate's (the checker's attributes), "strict" also asks the best shape misfit
to be <= STRICT_MISFIT, the bound the checker's comments give for ground truth (0.23, blurred and
noisy renders): a shape the checker can only just tell from another is not what was asked for.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from contrast_experiment import swaps

STRICT_MISFIT = 0.23


def dump(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from steady.cli.evaliterate import RANKING_PROMPTS
    from steady.models.default import embedded_judge_path
    from steady.params import GenerationRequest
    from steady.tiny.checker import check
    from steady.tiny.data import render as render_scene
    from steady.tiny.data import scene_for
    from steady.tiny.judge import load_vae, vae_roundtrip
    from steady.tiny.scenes import parse_prompt
    from steady.worker.adherence import AdherenceScorer, ClipScorer
    from steady.worker.direct import DirectRenderer

    torch.set_num_threads(args.threads)
    base = GenerationRequest(prompt="a circle", steps=20, cfg_scale=5.0, sampler="Euler a", model=args.model).check()
    renderer = DirectRenderer.load(base)
    model, judge = AdherenceScorer(renderer.pipe), ClipScorer(str(embedded_judge_path()))

    def reading(image: np.ndarray, prompt: str) -> dict:
        result = check(image, prompt)
        return {"correct": result.score == 1.0, "attributes": result.estimate.attributes(),
                "shape_errors": result.estimate.shape_errors}  # fmt: skip

    out: dict = {"model_hash": renderer.plan.model_hash, "reference": {}, "runs": {}}
    vae = load_vae()
    with torch.no_grad():
        for index, prompt in enumerate(RANKING_PROMPTS):
            rng = np.random.default_rng([11, index])
            scenes = [scene_for(parse_prompt(prompt), rng) for _ in range(args.reference)]
            clean = vae_roundtrip(np.stack([render_scene(s) for s in scenes]), vae)
            out["reference"][prompt] = [reading(im, prompt) for im in clean]
    for prompt in RANKING_PROMPTS:
        t0, rows, texts = time.perf_counter(), [], [prompt, *(alt for _, alt in swaps(prompt))]
        for seed in range(args.seed_start, args.seed_start + args.images):
            finals: list = []
            image = renderer.image(prompt, seed, on_final_latents=finals.append)
            rgb = np.asarray(image.convert("RGB"))
            with torch.no_grad():
                inputs = judge.processor(text=texts, images=[image], return_tensors="pt", padding=True)
                logits = judge.model(**inputs).logits_per_image[0].tolist()
            rows.append({"seed": seed, **reading(rgb, prompt), "model": model.score(finals[-1], image, prompt),
                         "judge": judge.score(None, image, prompt), "judge_logits": logits,
                         "pixels": rgb.tolist()})  # fmt: skip
        out["runs"][prompt] = rows
        print(f"{prompt}: {sum(r['correct'] for r in rows)}/{len(rows)} correct, {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


SCORES = {
    "model": lambda r: r["model"],
    "judge": lambda r: r["judge"],
    "judge margin": lambda r: r["judge_logits"][0] - max(r["judge_logits"][1:]),
}


def best_misfit(row: dict) -> float:
    return min(row["shape_errors"].values()) if row["shape_errors"] else float("inf")


def analyse(paths: list[str]) -> int:
    from steady.scoring.evaluate import RANKING_BASE_MAX, base_rate, precision_at_k

    for path in paths:
        with open(path) as f:
            data = json.load(f)
        ref = [best_misfit(r) for rows in data["reference"].values() for r in rows if r["correct"]]
        print(f"{path} (model {data['model_hash']}): well-formed reference, best misfit max {max(ref):.3f} "
              f"over {len(ref)} correctly read reconstructions")  # fmt: skip
        for verdict in ("lenient", "strict"):
            bases, tops = [], {name: [] for name in SCORES}
            for rows in data["runs"].values():
                correct = [r["correct"] and (verdict == "lenient" or best_misfit(r) <= STRICT_MISFIT) for r in rows]
                if base_rate(correct) > RANKING_BASE_MAX:
                    continue
                bases.append(base_rate(correct))
                for name, fn in SCORES.items():
                    tops[name].append(precision_at_k([fn(r) for r in rows], correct, 3))
            mean_base = sum(bases) / len(bases)
            lifts = ", ".join(f"{n} {sum(t) / len(t):.1%} = {sum(t) / len(t) / mean_base:.2f}x" for n, t in tops.items())
            print(f"  {verdict:7s} {len(bases)} prompts, base {mean_base:.1%}: {lifts}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/ranking_dump.json")
    parser.add_argument("--model", default="", help="model name or folder (default: the embedded model)")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--reference", type=int, default=50, help="clean reconstructions per prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--analyse", nargs="+", metavar="DUMP", help="print the figures of saved dumps")
    args = parser.parse_args(argv)
    return analyse(args.analyse) if args.analyse else dump(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
