"""How well the tiny world's CLIP (the judge) reads the shape of small and large shapes.

    python tools/judge_by_size.py [--per-size 80] [--seed 5]      (~1 minute idle)

Ground-truth scenes with each shape in turn and the size fixed (everything else drawn as the data
set does), reconstructed by the tiny VAE as the judge's training images are; the judge's shape is
the highest-scoring of the four captions that differ only in the shape word, short ("a small red
circle") and full (every attribute, as the judge was trained). The ranking prompts under 50 % are
small shapes (docs/iterate.md, session 13): is the judge weak there?
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from steady.models.default import embedded_judge_path
    from steady.tiny.data import render, scene_for
    from steady.tiny.judge import load_vae, phrase, vae_roundtrip
    from steady.tiny.scenes import SHAPES
    from steady.worker.adherence import ClipScorer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-size", type=int, default=80)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    judge, vae = ClipScorer(str(embedded_judge_path())), load_vae()
    rng = np.random.default_rng(args.seed)
    for size in ("small", "large"):
        scenes = [scene_for({"shape": SHAPES[i % len(SHAPES)], "size": size}, rng) for i in range(args.per_size)]
        with torch.no_grad():
            images = vae_roundtrip(np.stack([render(s) for s in scenes]), vae)
        right = {"short": 0, "full": 0}
        for scene, pixels in zip(scenes, images, strict=True):
            image = Image.fromarray(pixels)
            captions = {"short": [f"a {size} {scene.colour} {shape}" for shape in SHAPES],
                        "full": [phrase(scene, shape=shape) for shape in SHAPES]}  # fmt: skip
            for form, texts in captions.items():
                scores = [judge.score(None, image, t) for t in texts]
                right[form] += SHAPES[int(np.argmax(scores))] == scene.shape
        print(f"{size}: shape read right {right['short']}/{len(scenes)} (short captions), "
              f"{right['full']}/{len(scenes)} (full captions)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
