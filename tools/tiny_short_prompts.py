"""Does a tiny model draw the named shape when the prompt names little else? Checker shape counts
over 16 seeds (100-115) for short prompts ("a circle", "a small circle", ...) and the README's.

    python tools/tiny_short_prompts.py [MODEL_FOLDER] [--cfg 5] [--seeds 16]
                                        (default: the shipped tiny model, CFG 5, seeds 100-115)

eval-tiny's prompts name every attribute; its 30 x "a circle" only count colours. This shows what a
user typing a short prompt gets (docs/tiny-model.md; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

PROMPTS = ["a circle", "a red circle", "a small circle", "a large circle", "a square", "a triangle", "a cross",
           "a small red circle at the top left on a blue background"]  # fmt: skip
FIRST_SEED = 100


def main(argv: list[str]) -> int:
    import numpy as np

    from steady.params import GenerationRequest
    from steady.tiny.checker import analyse
    from steady.worker.direct import DirectRenderer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="", help="model folder (default: the shipped tiny model)")
    parser.add_argument("--cfg", type=float, default=5.0,
                        help="CFG scale (5: eval-tiny's and the embedded model's default; 7: a checkpoint's)")
    parser.add_argument("--seeds", type=int, default=16, help="seeds per prompt, from 100 (default 16)")
    args = parser.parse_args(argv)
    seeds = range(FIRST_SEED, FIRST_SEED + args.seeds)
    request = GenerationRequest(prompt=PROMPTS[0], steps=20, cfg_scale=args.cfg, sampler="Euler", model=args.model)
    renderer = DirectRenderer.load(request)
    model = renderer.resolved.model
    print(f"model {model.name} [{model.hash}], 20 Euler steps, CFG {args.cfg:g}, "
          f"seeds {seeds.start}-{seeds.stop - 1}")  # fmt: skip
    total = 0
    for prompt in PROMPTS:
        wanted = next(s for s in ("circle", "square", "triangle", "cross") if s in prompt)
        shapes: Counter[str | None] = Counter()
        for seed in seeds:
            image = np.asarray(renderer.image(prompt, seed).convert("RGB"))
            shapes[analyse(image).attributes()["shape"]] += 1
        total += shapes[wanted]
        print(f"{shapes[wanted]:2d}/{len(seeds)} {prompt!r}: {dict(shapes)}", flush=True)
    print(f"named shape drawn: {total}/{len(seeds) * len(PROMPTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
