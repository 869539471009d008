"""Which form of the self-scored adherence ranks the embedded model's checker-correct images first?

    python tools/adherence_experiment.py --images 50 --out build/adherence.json   # generate + score (~25 min)
    python tools/adherence_experiment.py --analyse build/adherence.json           # the table

For 16 prompts x N seeds (20 Euler a steps, CFG 5, as eval-iterate), each image's latent is noised
at 5 timesteps with 2 fixed noises, and the UNet's noise error is recorded under the full prompt,
the empty prompt, and the prompt with each content word left out. The analysis ranks each run by
several scores (the shipped one: empty-minus-full error; word ablation: leaving a word out must
hurt) at several timestep sets, and prints top-3 precision against the checker's verdict versus the
base rate, over the prompts whose base rate is at most 50 %, as eval-iterate counts them, and the
mean AUC (how often a correct image outscores an incorrect one; 0.5 = no signal) over the prompts
with 5-95 % correct, a steadier measure than three picks per prompt.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

PROMPTS = ("a red triangle", "a blue square", "a green circle", "a yellow cross", "a large purple triangle",
           "a small orange square", "a white cross", "a small blue triangle", "a small green square",
           "a large white triangle", "a black cross", "a small pink circle", "a brown triangle", "a small cyan cross",
           "a large gray square", "a small yellow triangle")  # fmt: skip
TIMESTEPS = (150, 350, 550, 750, 950)
NOISES = 2
STOPWORDS = {"a", "an", "the", "on", "at", "in", "of"}


def ablations(prompt: str) -> tuple[list[str], dict]:
    """The prompts each image is scored under after the prompt and the empty one: each content word
    left out; and what to add to each image's row."""
    words = prompt.split()
    return [" ".join(w for j, w in enumerate(words) if j != i) for i, w in enumerate(words) if w not in STOPWORDS], {}


def generate(n: int, out: str, seed_start: int = 0, prompts: tuple[str, ...] = PROMPTS, variants=ablations) -> None:
    """`n` images per prompt (seeds from `seed_start`) and each one's noise errors under the prompt, the
    empty prompt and `variants(prompt)`, with the checker's verdict and reading, as JSON in `out`."""
    import torch
    from diffusers import DDPMScheduler, EulerAncestralDiscreteScheduler

    from steady.models.default import embedded_model_path
    from steady.models.detect import inspect_model
    from steady.tiny.checker import check
    from steady.worker.loader import load_pipeline
    from steady.worker.pipeline import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(2)
    pipe = load_pipeline(inspect_model(embedded_model_path()), device="cpu", dtype=torch.float32)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    schedule = DDPMScheduler.from_config(pipe.scheduler.config)
    rows = []
    for prompt in prompts:
        others, extra = variants(prompt)
        context = torch.cat([pipe.encode_prompt(v, "cpu", 1, False)[0] for v in [prompt, "", *others]])
        k = 2 + len(others)
        for seed in range(seed_start, seed_start + n):
            latents = pipe(prompt, num_inference_steps=20, guidance_scale=5.0, height=64, width=64,
                           generator=torch.Generator().manual_seed(seed), output_type="latent").images  # fmt: skip
            with torch.inference_mode():
                decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
            pixels = ((decoded[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            verdict = check(pixels, prompt)
            gen = torch.Generator().manual_seed(1234)
            err = np.zeros((len(TIMESTEPS), NOISES, k))
            with torch.inference_mode():
                for a in range(NOISES):
                    for i, t in enumerate(TIMESTEPS):
                        noise, step = torch.randn(latents.shape, generator=gen), torch.tensor([t])
                        noisy = schedule.add_noise(latents, noise, step)
                        pred = pipe.unet(noisy.expand(k, -1, -1, -1), step.expand(k), encoder_hidden_states=context).sample
                        err[i, a] = (((pred - noise) ** 2).flatten(1).mean(1) / (noise**2).mean()).numpy()
            rows.append({"prompt": prompt, "seed": seed, "ok": verdict.score == 1.0,
                         "seen": verdict.estimate.attributes(), "err": err.tolist(), **extra})  # fmt: skip
        print(prompt, sum(r["ok"] for r in rows if r["prompt"] == prompt), "of", n, "correct", flush=True)
    with open(out, "w") as f:
        json.dump({"timesteps": TIMESTEPS, "rows": rows}, f)


def auc(scores: np.ndarray, ok: np.ndarray) -> float:
    """Probability that a correct image outscores an incorrect one (ties count half)."""
    pos, neg = scores[ok][:, None], scores[~ok][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def load_runs(path: str) -> tuple[dict, dict[str, list[dict]]]:
    with open(path) as f:
        data = json.load(f)
    runs: dict[str, list[dict]] = {}
    for row in data["rows"]:
        runs.setdefault(row["prompt"], []).append(row)
    return data, runs


def ranking_table(runs: dict[str, list[dict]], name: str, score) -> None:
    """Top-3 precision vs base rate over the prompts with base <= 50 %, and the mean AUC over those
    with 5-95 % correct, when each run is ranked by `score(row)`."""
    base, top, aucs = [], [], []
    for rows in runs.values():
        ok = np.array([r["ok"] for r in rows])
        scores = np.array([score(r) for r in rows])
        if 0.05 < ok.mean() < 0.95:
            aucs.append(auc(scores, ok))
        if not 0 < ok.mean() <= 0.5:
            continue
        base.append(ok.mean())
        top.append(ok[np.argsort(-scores, kind="stable")[:3]].mean())
    print(f"{name:40s} prompts {len(base):2d}  base {np.mean(base):6.1%}  top-3 {np.mean(top):6.1%}  "
          f"ratio {np.mean(top) / np.mean(base):.2f}  | mean AUC over {len(aucs)} prompts {np.mean(aucs):.3f}")


def analyse(path: str) -> None:
    data, runs = load_runs(path)
    idx = {t: i for i, t in enumerate(data["timesteps"])}

    def table(name: str, score) -> None:
        ranking_table(runs, name, lambda r: score(np.array(r["err"])))

    sets = {"350-750 (shipped: 250-850)": [350, 550, 750], "all five": list(idx), "150,350": [150, 350], "550,750": [550, 750],
            "750": [750], "750,950": [750, 950]}  # fmt: skip
    for label, ts in sets.items():
        s = [idx[t] for t in ts]
        table(f"empty - full, t {label}", lambda e, s=s: (e[s][:, :, 1] - e[s][:, :, 0]).mean())
        table(f"word ablation mean, t {label}", lambda e, s=s: (e[s][:, :, 2:] - e[s][:, :, [0]]).mean())
        table(f"word ablation min, t {label}", lambda e, s=s: (e[s][:, :, 2:] - e[s][:, :, [0]]).mean(axis=(0, 1)).min())
    rng = np.random.default_rng(0)
    table("random order", lambda e: rng.random())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--out", default="build/adherence.json")
    ap.add_argument("--analyse", default="")
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (eval-iterate uses 0..19: keep clear of it)")
    args = ap.parse_args()
    if args.analyse:
        analyse(args.analyse)
    else:
        generate(args.images, args.out, args.seed_start)
        analyse(args.out)


if __name__ == "__main__":
    main()
