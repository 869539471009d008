"""Does the diffusion classifier rank better when the prompt competes with its own alternatives?

    python tools/contrast_experiment.py --images 40 --seed-start 100 --out build/contrast.json
    python tools/contrast_experiment.py --analyse build/contrast.json

The shipped self-score compares the prompt with the empty prompt. Li et al. (2023) classify by
comparing the candidate classes with each other: the image's noise error under "a small orange
square" against that under "a small orange circle", "a small red square", "a large orange square"...
This records, for 23 prompts x N seeds (20 Euler a steps, CFG 5, as eval-iterate), each image's
noise error at 5 timesteps x 2 fixed noises under the prompt, the empty prompt and every prompt
with one attribute word swapped for another of its kind (shape, colour, size), and the analysis
ranks each run by several scores, printing top-3 precision vs the base rate over the prompts with
base rate <= 50 % and the mean AUC over the prompts with 5-95 % correct images.
"""

from __future__ import annotations

import argparse

import numpy as np
from adherence_experiment import generate, load_runs, ranking_table

PROMPTS = ("a red triangle", "a blue square", "a green circle", "a yellow cross", "a large purple triangle",
           "a small orange square", "a white cross", "a small blue triangle", "a small green square",
           "a large white triangle", "a black cross", "a small pink circle", "a brown triangle", "a small cyan cross",
           "a large gray square", "a small yellow triangle",
           "a circle", "a small circle", "a large circle", "a square", "a triangle", "a cross", "a small square")  # fmt: skip


def swaps(prompt: str) -> list[tuple[str, str]]:
    """(kind, prompt with one attribute word replaced by another of its kind) for every such word."""
    from steady.tiny.scenes import COLOUR_NAMES, SHAPES, SIZES

    groups = {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES}
    words = prompt.split()
    out = []
    for i, w in enumerate(words):
        for kind, group in groups.items():
            if w in group:
                out += [(kind, " ".join(words[:i] + [o] + words[i + 1:])) for o in group if o != w]
    return out


def swap_variants(prompt: str) -> tuple[list[str], dict]:
    alts = swaps(prompt)
    return [p for _, p in alts], {"kinds": [k for k, _ in alts]}


def analyse(path: str) -> None:
    data, runs = load_runs(path)
    idx = {t: i for i, t in enumerate(data["timesteps"])}

    def table(name: str, score) -> None:
        ranking_table(runs, name, lambda r: score(np.array(r["err"]), r["kinds"]))

    for prompt, rows in runs.items():
        ok = sum(r["ok"] for r in rows)
        print(f"  {prompt:26s} {ok:2d}/{len(rows)} correct")

    def group_min(e: np.ndarray, kinds: list[str]) -> float:
        gain = e[:, :, 2:] - e[:, :, [0]]  # error under each swap minus under the prompt
        by_kind = [gain[:, :, [j for j, k in enumerate(kinds) if k == g]].mean() for g in sorted(set(kinds))]
        return min(by_kind) if by_kind else 0.0

    def won(e: np.ndarray, kinds: list[str]) -> float:
        mean = e.mean(axis=(0, 1))
        return float((mean[2:] > mean[0]).mean()) if len(kinds) else 0.0

    sets = {"all five": list(idx), "350-750": [350, 550, 750], "150,350": [150, 350], "550,750": [550, 750],
            "350": [350], "550": [550], "750": [750], "250-ish (150,350,550)": [150, 350, 550]}  # fmt: skip
    for label, ts in sets.items():
        s = [idx[t] for t in ts]
        table(f"empty - full, t {label}", lambda e, k, s=s: (e[s][:, :, 1] - e[s][:, :, 0]).mean())
        table(f"swap mean, t {label}", lambda e, k, s=s: (e[s][:, :, 2:] - e[s][:, :, [0]]).mean() if k else 0.0)
        table(f"swap min, t {label}",
              lambda e, k, s=s: (e[s][:, :, 2:] - e[s][:, :, [0]]).mean(axis=(0, 1)).min() if k else 0.0)
        table(f"swap group-min, t {label}", lambda e, k, s=s: group_min(e[s], k))
        table(f"swaps beaten, t {label}", lambda e, k, s=s: won(e[s], k))
        table(f"swap mean, 1 noise, t {label}", lambda e, k, s=s: (e[s][:, :1, 2:] - e[s][:, :1, [0]]).mean() if k else 0.0)
    rng = np.random.default_rng(0)
    table("random order", lambda e, k: rng.random())
    # Can the model tell what it drew? On images where the checker reads another value than the
    # prompt's (e.g. red for "orange"), is the prompt with the value drawn denoised better?
    print("images showing another value than asked: share where the drawn value's prompt has the lower error")
    drawn: dict[tuple[str, int], list[float]] = {}
    for row in data["rows"]:
        words, e = row["prompt"].split(), np.array(row["err"])
        for j, (kind, alt) in enumerate(swaps(row["prompt"])):
            if row["seen"].get(kind) == next(w for w in alt.split() if w not in words):
                for i, t in enumerate(data["timesteps"]):
                    drawn.setdefault((kind, t), []).append(e[i, :, 2 + j].mean() - e[i, :, 0].mean())
    for (kind, t), gaps in sorted(drawn.items()):
        print(f"  {kind:7s} t {t:4d}: {np.mean(np.array(gaps) < 0):5.1%} of {len(gaps)} images")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--out", default="build/contrast.json")
    ap.add_argument("--analyse", default="")
    ap.add_argument("--seed-start", type=int, default=100, help="first seed (eval-iterate uses 0..19: keep clear of it)")
    args = ap.parse_args()
    if args.analyse:
        analyse(args.analyse)
    else:
        generate(args.images, args.out, args.seed_start, PROMPTS, swap_variants)
        analyse(args.out)


if __name__ == "__main__":
    raise SystemExit(main())
