"""Where does a tiny model lose the shape? Checker accuracy of shape per (shape, size), for the
VAE's own reconstructions and for the whole model's samples, with the confusions.

    python tools/tiny_shape_breakdown.py                          # the shipped model
    python tools/tiny_shape_breakdown.py --model build/tiny --seed 1
    python tools/tiny_shape_breakdown.py --balanced 8      # + 8 full prompts per (shape, size)

Reconstructions: ``--recon`` ground-truth scenes (data set seed 5, every attribute drawn) through
encoder mean -> decoder. Samples: the eval-tiny prompt set drawn with ``--seed`` (eval-tiny's own
set is seed 20261125; pick another one to choose between models without looking at it), 20 Euler
steps, CFG 5, through the same load/render path as `steady generate`. Small shapes are where a
tiny model loses the shape first (a small cross can come out of the decoder as a blob). eval-tiny's
set is mostly its held-out combinations (3 circles in 64 prompts), so ``--balanced N`` adds N
fully named prompts per (shape, size), drawn with a fixed seed (99). ``--per-holdout`` and
``--seen`` size the eval-tiny set (8 and 32, eval-tiny's own).
"""

from __future__ import annotations

import argparse
import collections

import numpy as np


def table(rows: list[tuple[str, str, str | None]]) -> str:
    """rows of (true shape, size, read shape) -> 'circle/large 5/5 ...' and the confusions."""
    hits: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    wrong: collections.Counter = collections.Counter()
    for shape, size, got in rows:
        hits[(shape, size)][0] += got == shape
        hits[(shape, size)][1] += 1
        if got != shape:
            wrong[f"{size} {shape} -> {got}"] += 1
    total = sum(h[0] for h in hits.values()) / max(1, len(rows))
    cells = "  ".join(f"{s}/{z} {h[0]}/{h[1]}" for (s, z), h in sorted(hits.items()))
    return f"shape {total:.1%}  |  {cells}\n  misread: {dict(wrong.most_common())}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="", help="model folder (default: the shipped tiny model)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the sample prompt set")
    ap.add_argument("--per-holdout", type=int, default=8)
    ap.add_argument("--seen", type=int, default=32)
    ap.add_argument("--recon", type=int, default=400)
    ap.add_argument("--balanced", type=int, default=0, help="full prompts per (shape, size); 0: none")
    args = ap.parse_args()

    import torch

    from steady.params import GenerationRequest
    from steady.tiny.checker import analyse
    from steady.tiny.common import to_uint8
    from steady.tiny.data import dataset, scene_for
    from steady.tiny.evaluate import eval_prompts
    from steady.tiny.scenes import SHAPES, SIZES, caption, parse_prompt
    from steady.tiny.train import encode_means
    from steady.worker.direct import DirectRenderer

    torch.set_num_threads(2)
    request = GenerationRequest(prompt="a circle", steps=20, cfg_scale=5.0, sampler="Euler", model=args.model)
    renderer = DirectRenderer.load(request)
    model = renderer.resolved.model
    vae = renderer.pipe.vae.float()
    print(f"model {model.name} [{model.hash}]")

    scenes = list(dataset(5, args.recon, drop_prob=0.0, holdout=False))
    with torch.inference_mode():
        decoded = vae.decode(encode_means(vae, [s.image for s in scenes])).sample
    recon = [(s.scene.shape, s.scene.size, analyse(img).attributes()["shape"])
             for s, img in zip(scenes, to_uint8(decoded), strict=True)]  # fmt: skip
    print(f"VAE reconstructions of {len(recon)} scenes: {table(recon)}")

    def sample(prompts: list[tuple[str, int]]) -> list[tuple[str, str, str | None]]:
        rows = []
        for prompt, seed in prompts:
            image = np.asarray(renderer.image(prompt, seed).convert("RGB"))
            want = parse_prompt(prompt)
            rows.append((want["shape"], want["size"], analyse(image).attributes()["shape"]))
        return rows

    rows = sample([(p.prompt, p.seed) for p in eval_prompts(args.per_holdout, args.seen, seed=args.seed)])
    print(f"samples of {len(rows)} prompts (seed {args.seed}): {table(rows)}")
    if args.balanced:
        rng, prompts = np.random.default_rng(99), []
        for shape in SHAPES:
            for size in SIZES:
                for i in range(args.balanced):
                    prompts.append((caption(scene_for({"shape": shape, "size": size}, rng), rng, 0.0), i))
        rows = sample(prompts)
        print(f"samples of {len(rows)} balanced full prompts: {table(rows)}")


if __name__ == "__main__":
    main()
