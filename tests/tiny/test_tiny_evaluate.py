"""The evaluation set and scoring, checked on ground-truth renders (where the answer is known)."""

from __future__ import annotations

import numpy as np

from steady.tiny.data import make_scene, render
from steady.tiny.evaluate import EvalPrompt, eval_prompts, format_report, score
from steady.tiny.scenes import HOLDOUTS, is_held_out, parse_prompt


def _truth(p: EvalPrompt) -> np.ndarray:
    attrs = parse_prompt(p.prompt)
    return render(make_scene(np.random.default_rng(p.seed), **attrs))


def test_prompts_are_fixed_full_and_cover_every_holdout() -> None:
    prompts = eval_prompts(per_holdout=3, seen=10)
    assert prompts == eval_prompts(per_holdout=3, seen=10)
    assert len(prompts) == 3 * len(HOLDOUTS) + 10
    for p in prompts:
        attrs = parse_prompt(p.prompt)
        assert set(attrs) == {"shape", "colour", "size", "position", "background"}, p.prompt
        assert is_held_out(attrs) == p.held_out
    for h in HOLDOUTS:
        assert sum(h.matches(parse_prompt(p.prompt)) for p in prompts) >= 3


def test_ground_truth_scores_perfectly_and_wrong_images_do_not() -> None:
    prompts = eval_prompts(per_holdout=2, seen=8)
    images = [_truth(p) for p in prompts]
    report = score(prompts, images)
    assert all(v == 1.0 for v in report.accuracy.values())
    assert report.misses() == []
    shuffled = score(prompts, images[1:] + images[:1])
    assert shuffled.accuracy["colour"] < 0.5
    assert "colour" in " ".join(shuffled.misses())
    blank = score(prompts, [np.zeros((64, 64, 3), np.uint8)] * len(prompts))
    assert blank.not_found == len(prompts) and blank.accuracy["shape"] == 0.0


def test_variety_counts_distinct_colours() -> None:
    prompts = eval_prompts(per_holdout=1, seen=0)
    images = [_truth(p) for p in prompts]
    rng = np.random.default_rng(3)
    many = [render(make_scene(rng, "circle", c, "large", "center", "black" if c != "black" else "white"))
            for c in ("red", "blue", "green", "yellow", "white", "pink", "orange")]  # fmt: skip
    report = score(prompts, images, many)
    assert report.variety_colours == 7
    same = score(prompts, images, [many[0]] * 7)
    assert same.variety_colours == 1
    assert any("variety" in m for m in same.misses())
    assert "variety over 7" in format_report(same)
