"""The tiny world's CLIP ("the judge"): a contrastive image-text model trained on the tiny model's
synthetic scenes, saved as an ordinary `transformers` CLIPModel folder, so the worker's CLIP
scorer (`steady.worker.adherence.ClipScorer`, config `scorer`) loads it as it would a real CLIP.

    python -m steady.tiny.judge --out build/judge          (the shipped judge: 14 minutes on 2 cores)
    python -m steady.tiny.judge --out /tmp/j --quick        (a smoke run, not a usable judge)

Why it exists: the generating model's own adherence score cannot see the model's own mistakes
(docs/research/README.md, the contrast experiment: on images showing another colour than the
prompt's, the model denoises them better under the prompt's colour than under the one drawn,
87-92 % of the time), so ranking a run needs a separate judge. For real checkpoints that is a CLIP
model on disk; for the embedded model it is this one, and with it `steady eval-iterate` measures
the CLIP path.

Steps:
 1. Pool: `pool` scenes (every combination, no hold-outs), each kept twice: as rendered and as
    the shipped tiny VAE reconstructs it (encode, decode), since the images the judge will see
    come out of that decoder.
 2. Contrastive training (CLIP's symmetric cross-entropy over a batch's image-caption pairs), with
    the truth of the synthetic world: a caption's positives are every image of the batch whose
    scene shows all the attributes the caption names (a short caption such as "a circle" fits
    many images). Captions use the data set's grammar with each attribute left out with a
    probability drawn per caption from [0, `max_drop`], so short prompts are common.
 3. Zero-shot accuracy on fresh reconstructions: for each attribute, the true caption against
    the same caption with that attribute swapped for each other value; saved in `judge.json`.
 4. Save: CLIPModel (float16 safetensors), CLIPProcessor (64-pixel images, the tiny model's
    tokenizer), `judge.json` (config, timings, losses, accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steady.tiny.scenes import ATTRIBUTES, BACKGROUNDS, COLOUR_NAMES, POSITION_NAMES, SHAPES, SIZES, Scene, caption
from steady.tiny.train import add_config_flags, lr_at, param_groups, to_tensor, to_uint8, with_flags

IMAGE_MEAN = (0.5, 0.5, 0.5)  # pixel values in [-1, 1], as the tiny VAE sees them
IMAGE_STD = (0.5, 0.5, 0.5)
VALUES = {"shape": SHAPES, "colour": COLOUR_NAMES, "size": SIZES, "position": POSITION_NAMES,
          "background": BACKGROUNDS}  # fmt: skip


@dataclass(frozen=True)
class JudgeConfig:
    steps: int = 3000
    batch: int = 128
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.05
    pool: int = 20_000
    max_drop: float = 0.9
    seed: int = 0
    text_hidden: int = 32
    text_layers: int = 2
    vision_hidden: int = 64
    vision_layers: int = 4
    patch: int = 8
    projection: int = 64
    eval_every: int = 500
    eval_scenes: int = 300
    threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = dict(steps=20, batch=32, pool=256, warmup=5, eval_every=10, eval_scenes=16)  # noqa: C408


def clip_config(c: JudgeConfig) -> Any:
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    from steady.tiny import arch as A

    tok = A.load_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=c.text_hidden, intermediate_size=4 * c.text_hidden,
                          num_hidden_layers=c.text_layers, num_attention_heads=4, max_position_embeddings=77,
                          projection_dim=c.projection, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)  # fmt: skip
    vision = CLIPVisionConfig(hidden_size=c.vision_hidden, intermediate_size=4 * c.vision_hidden,
                              num_hidden_layers=c.vision_layers, num_attention_heads=4, image_size=64,
                              patch_size=c.patch, projection_dim=c.projection)  # fmt: skip
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=c.projection)


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """2-D sine-cosine position embeddings (as MAE's ViT), a zero row first for the class token:
    (1 + grid*grid, dim). CLIP's default start (normal, std 0.02) is drowned by the patch content,
    and a judge trained from it never learned where the shape is (the first judge trained: position at
    chance)."""
    quarter = dim // 4
    freq = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")  # fmt: skip
    parts = [f(axis.reshape(-1, 1) * freq) for axis in (rows, cols) for f in (torch.sin, torch.cos)]
    table = torch.cat(parts, dim=1)
    table = F.pad(table, (0, dim - table.shape[1]))
    return torch.cat([torch.zeros(1, dim), table])


def processor() -> Any:
    """The judge's CLIPProcessor: 64-pixel images scaled to [-1, 1], the tiny model's tokenizer."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    from steady.tiny import arch as A

    images = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
                                image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD))  # fmt: skip
    return CLIPProcessor(image_processor=images, tokenizer=A.load_tokenizer())


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 64, 64, 3) -> the CLIPProcessor's pixel_values for them (N, 3, 64, 64)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean, std = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------
# 1. Pool
@dataclass
class Pool:
    scenes: list[Scene]
    rendered: np.ndarray  # uint8 (N, 64, 64, 3)
    decoded: np.ndarray  # the same scenes through the tiny VAE


@torch.no_grad()
def vae_roundtrip(images: np.ndarray, vae: Any, batch: int = 500) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        out.append(to_uint8(vae.decode(vae.encode(to_tensor(images[i : i + batch])).latent_dist.mean).sample))
    return np.concatenate(out)


def build_pool(n: int, seed: int, vae: Any) -> Pool:
    from steady.tiny.data import render, sample_scene

    rng = np.random.default_rng([seed, 1])
    scenes = [sample_scene(rng, holdout=False) for _ in range(n)]
    rendered = np.stack([render(s) for s in scenes])
    return Pool(scenes, rendered, vae_roundtrip(rendered, vae))


def load_vae() -> Any:
    from diffusers import AutoencoderKL

    from steady.models.default import embedded_model_path

    return AutoencoderKL.from_pretrained(embedded_model_path() / "vae", torch_dtype=torch.float32).eval()


# ---------------------------------------------------------------------------------------------
# 2. Training
def positives(captions: list[str], scenes: list[Scene]) -> torch.Tensor:
    """[caption i, image j] = 1.0 where scene j shows every attribute caption i names."""
    from steady.tiny.scenes import parse_prompt

    named = [parse_prompt(c) for c in captions]
    return torch.tensor([[float(all(getattr(s, a) == v for a, v in n.items())) for s in scenes] for n in named])


def contrastive_loss(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy, with every matching pair a positive (soft targets)."""
    text_to_image = F.cross_entropy(logits, match / match.sum(1, keepdim=True))
    image_to_text = F.cross_entropy(logits.T, match.T / match.T.sum(1, keepdim=True))
    return (text_to_image + image_to_text) / 2


def similarities(model: Any, tok: Any, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Cosine similarities [text, image]."""
    ids = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    out = model(input_ids=ids.input_ids, attention_mask=ids.attention_mask, pixel_values=images)
    return out.text_embeds @ out.image_embeds.T  # both already normalised


def train_judge(c: JudgeConfig, pool: Pool, vae: Any, log: dict[str, Any]) -> Any:
    from transformers import CLIPModel

    from steady.tiny import arch as A

    torch.manual_seed(c.seed)
    model = CLIPModel(clip_config(c)).train()
    with torch.no_grad():
        model.vision_model.embeddings.position_embedding.weight.copy_(sincos_positions(64 // c.patch, c.vision_hidden))
    tok = A.load_tokenizer()
    opt = torch.optim.AdamW(param_groups([model], c.weight_decay), lr=c.lr)
    rng = np.random.default_rng([c.seed, 2])
    held_out = build_pool(c.eval_scenes, c.seed + 100, vae)  # the same fresh scenes at every evaluation
    t0 = time.perf_counter()
    for step in range(c.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, c.steps, c.lr, c.warmup)
        idx = rng.integers(0, len(pool.scenes), c.batch)
        source = np.where(rng.random(c.batch)[:, None, None, None] < 0.5, pool.rendered[idx], pool.decoded[idx])
        scenes = [pool.scenes[i] for i in idx]
        captions = [caption(s, rng, float(rng.uniform(0.0, c.max_drop))) for s in scenes]
        ids = tok(captions, padding=True, truncation=True, max_length=77, return_tensors="pt")
        out = model(input_ids=ids.input_ids, attention_mask=ids.attention_mask, pixel_values=pixels(source))
        loss = contrastive_loss(out.logits_per_text, positives(captions, scenes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == c.steps - 1:
            log["loss"].append({"step": step, "loss": round(loss.item(), 4), "t": round(time.perf_counter() - t0, 1)})
            print("loss", json.dumps(log["loss"][-1]), flush=True)
        if (step + 1) % c.eval_every == 0 or step == c.steps - 1:
            model.eval()
            acc = zero_shot_accuracy(model, tok, held_out)
            model.train()
            log["eval"].append({"step": step + 1, "t": round(time.perf_counter() - t0, 1), **acc})
            print("judge", json.dumps(log["eval"][-1]), flush=True)
    log["timings_s"]["train"] = round(time.perf_counter() - t0, 1)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# 3. Zero-shot accuracy
def phrase(scene: Scene, **override: str) -> str:
    """The full caption of a scene's attributes, with any attribute overridden."""
    from steady.tiny.scenes import position_phrase

    a = {**scene.attributes(), **override}
    article = "an" if a["size"][0] in "aeiou" else "a"
    return f"{article} {a['size']} {a['colour']} {a['shape']} {position_phrase(a['position'])} on a {a['background']} background"


@torch.no_grad()
def zero_shot_accuracy(model: Any, tok: Any, pool: Pool) -> dict[str, float]:
    """Per attribute, how often the true full caption outscores every caption with that attribute
    swapped, on the pool's scenes as the tiny VAE reconstructs them."""
    images = pixels(pool.decoded)
    right = dict.fromkeys(ATTRIBUTES, 0)
    for i, scene in enumerate(pool.scenes):
        texts, spans = [phrase(scene)], {}
        for attr in ATTRIBUTES:
            others = [v for v in VALUES[attr] if v != getattr(scene, attr)
                      and not (attr == "background" and v == scene.colour) and not (attr == "colour" and v == scene.background)]  # fmt: skip
            spans[attr] = (len(texts), len(texts) + len(others))
            texts += [phrase(scene, **{attr: v}) for v in others]
        sims = similarities(model, tok, images[i : i + 1], texts)[:, 0]  # the image encoded once for all captions
        for attr, (lo, hi) in spans.items():
            right[attr] += int(bool((sims[0] >= sims[lo:hi]).all()))  # as argmax == 0
    return {a: round(right[a] / len(pool.scenes), 4) for a in ATTRIBUTES}


# ---------------------------------------------------------------------------------------------
# 4. Save
def save_judge(model: Any, out: Path, log: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    processor().save_pretrained(out)
    tmp = out / "judge.json.tmp"
    tmp.write_text(json.dumps(log, indent=1), encoding="utf-8")
    os.replace(tmp, out / "judge.json")


def train(c: JudgeConfig, out: Path) -> dict[str, Any]:
    if c.threads:
        torch.set_num_threads(c.threads)
    log: dict[str, Any] = {"config": c.to_dict(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "loss": [], "eval": [], "timings_s": {}}  # fmt: skip
    t0 = time.perf_counter()
    vae = load_vae()
    pool = build_pool(c.pool, c.seed, vae)
    log["timings_s"]["pool"] = round(time.perf_counter() - t0, 1)
    model = train_judge(c, pool, vae, log)
    log["timings_s"]["total"] = round(time.perf_counter() - t0, 1)
    save_judge(model, out, log)
    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m steady.tiny.judge", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the CLIP model")
    p.add_argument("--quick", action="store_true", help="a smoke run (seconds), not a usable judge")
    add_config_flags(p, JudgeConfig)
    args = p.parse_args(argv)
    c = with_flags(replace(JudgeConfig(), **QUICK) if args.quick else JudgeConfig(), args)
    log = train(c, args.out)
    print("done in", log["timings_s"], "accuracy", log["eval"][-1] if log["eval"] else None, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
