"""Does the tiny world's CLIP (the judge) read the model's hard-prompt images as the checker does?

    python tools/judge_agreement.py [JUDGE_FOLDER]     (default: the shipped judge; ~2 minutes)

For eval-iterate's five ranking prompts under 50 % (session 11), seeds 0-19 as eval-iterate: the
checker's shape and how close its call was (the gap between its best and second-best shape fit), and
the judge's shape (the prompt with each shape swapped in, highest CLIP score), grouped by that gap
(docs/iterate.md, session 11).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import numpy as np

    from steady.models.default import embedded_judge_path
    from steady.params import GenerationRequest
    from steady.tiny.checker import check
    from steady.tiny.scenes import SHAPES
    from steady.worker.adherence import ClipScorer
    from steady.worker.direct import DirectRenderer

    base = GenerationRequest(prompt="a circle", steps=20, cfg_scale=5.0, sampler="Euler a").check()
    renderer = DirectRenderer.load(base)
    judge = ClipScorer(argv[0] if argv else str(embedded_judge_path()))
    rows = []
    for prompt in ("a small orange square", "a small green square", "a small cyan cross", "a small circle", "a cross"):
        asked = next(s for s in SHAPES if s in prompt)
        for seed in range(20):
            image = renderer.image(prompt, seed)
            estimate = check(np.asarray(image.convert("RGB")), prompt).estimate
            if not estimate.shape_errors:
                continue
            fits = sorted(estimate.shape_errors.values())
            judged = max(SHAPES, key=lambda s: judge.score(None, image, prompt.replace(asked, s)))
            rows.append((fits[1] - fits[0], estimate.shape == judged))
    gaps, agree = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    print(f"{len(rows)} images with a shape; median gap between the checker's two best fits {np.median(gaps):.3f}")
    for lo, hi in ((0.0, 0.03), (0.03, 0.08), (0.08, np.inf)):
        sel = (gaps >= lo) & (gaps < hi)
        print(f"  gap [{lo}, {hi}): {sel.sum():3d} images, the judge's shape is the checker's in {agree[sel].mean():.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
