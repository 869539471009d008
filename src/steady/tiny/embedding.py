"""A textual-inversion embedding trained on the embedded model, saved in A1111's format.

    python -m steady.tiny.teach embedding --out build/aqua.safetensors          # the shipped one
    python -m steady.tiny.teach embedding --out /tmp/e.safetensors --quick      # a smoke run (seconds)

The word is one the model never read (its token's row in the text encoder was never trained), and
it names a colour the model draws: ``aqua`` for the palette's cyan. The checker's new colour
(lime, ``scenes.NEW_COLOURS``) cannot be the target: the shipped VAE's decoder has no latent that
decodes to it (measured: VAE round trips of lime scenes read orange-brown; 300 Adam steps of decoder
inversion reach yellow, never lime), so neither an embedding nor a LoRA can draw it.

Steps: the model stays frozen; one vector (the text encoder's width, 64) starts at the mean of
the colour words' token rows and replaces the word's token row at every position it stands
(a forward hook on the token table); it is trained with the base model's loss on scenes whose
shape (or, for a quarter, background) is that colour, captioned with the word for the colour.
Saved as A1111 saves one: ``emb_params`` (vectors, width), float32, with its name and step count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steady.tiny.adapt import Base, eps_loss, load_base, lr_now, save_atomic, token_ids
from steady.tiny.data import DEFAULT_DROP_PROB, scene_for
from steady.tiny.scenes import COLOUR_NAMES, caption

WORD = "aqua"
COLOUR = "cyan"


@dataclass(frozen=True)
class EmbeddingConfig:
    seed: int = 0
    threads: int = 1
    word: str = WORD
    colour: str = COLOUR
    steps: int = 300
    batch: int = 16
    lr: float = 5e-2
    warmup: int = 20
    pool: int = 500
    background_share: float = 0.25  # scenes where the colour is the background ("on an aqua background")
    empty_caption: float = 0.0
    min_snr: float = 5.0
    offset_noise: float = 0.15
    log_every: int = 25
    eval_images: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = {"steps": 4, "batch": 4, "pool": 16, "log_every": 2, "eval_images": 2, "warmup": 2}


def word_id(tokenizer: Any, word: str) -> int:
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"word={word!r} is {len(ids)} tokens; the embedding's word must be one")
    return int(ids[0])


@contextmanager
def replaced_row(text: Any, token: int, vector: torch.Tensor) -> Iterator[None]:
    """While open, the text encoder reads ``vector`` wherever token ``token`` stands."""
    table = text.get_input_embeddings()
    ids: list[torch.Tensor] = []
    pre = table.register_forward_pre_hook(lambda _m, args: ids.append(args[0]) or None)

    def swap(_m: Any, _args: Any, out: torch.Tensor) -> torch.Tensor:
        mask = (ids.pop() == token)[..., None]
        return torch.where(mask, vector.to(out.dtype).expand_as(out), out)

    post = table.register_forward_hook(swap)
    try:
        yield
    finally:
        pre.remove()
        post.remove()


def training_scenes(c: EmbeddingConfig) -> list[tuple[Any, str]]:
    """(latent-pool scene, attribute that has the colour) pairs."""
    rng = np.random.default_rng([c.seed, 31])
    out = []
    for _ in range(c.pool):
        where = "background" if rng.random() < c.background_share else "colour"
        out.append((scene_for({where: c.colour}, rng), where))
    return out


def worded(scene: Any, rng: np.random.Generator, c: EmbeddingConfig) -> str:
    """A caption of ``scene`` with the colour's name replaced by the word (which it always names)."""
    text = caption(scene, rng, DEFAULT_DROP_PROB)
    if c.colour not in text.split():
        text = caption(scene, rng, 0.0)
    return " ".join(c.word if w == c.colour else w for w in text.split())


def train_embedding(c: EmbeddingConfig, out: Path, name: str) -> dict[str, Any]:
    from steady.tiny.adapt import LatentPool
    from steady.tiny.data import render
    from steady.tiny.train import encode_means

    torch.manual_seed(c.seed)
    if c.threads:
        torch.set_num_threads(c.threads)
    t0 = time.perf_counter()
    base = load_base()
    token = word_id(base.tokenizer, c.word)
    scenes = [s for s, _ in training_scenes(c)]
    pool = LatentPool(encode_means(base.vae, [render(s) for s in scenes]) * base.scale, scenes)
    table = base.text.get_input_embeddings().weight
    rows = [i for n in COLOUR_NAMES for i in base.tokenizer(n, add_special_tokens=False).input_ids]
    vector = torch.nn.Parameter(table[rows].mean(0, keepdim=True).detach().clone())  # a colour in general
    opt = torch.optim.AdamW([vector], lr=c.lr, weight_decay=0.0)
    rng, gen = np.random.default_rng(c.seed + 1), torch.Generator().manual_seed(c.seed + 2)
    log: list[dict[str, float]] = []
    running: list[float] = []
    for step in range(c.steps):
        for g in opt.param_groups:
            g["lr"] = lr_now(step, c)
        idx = rng.integers(0, len(pool.scenes), c.batch)
        caps = [worded(pool.scenes[i], rng, c) for i in idx]
        with replaced_row(base.text, token, vector):
            hidden = base.text(token_ids(base.tokenizer, caps)).last_hidden_state
        loss = eps_loss(base.unet, hidden, pool.latents[torch.from_numpy(idx)], c, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        if (step + 1) % c.log_every == 0:
            log.append({"step": step + 1, "loss": float(np.mean(running)), "t": round(time.perf_counter() - t0, 1)})
            print("embedding", json.dumps(log[-1]), flush=True)
            running = []
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        before = reading(base, c, None)
        after = reading(base, c, (token, vector.detach()))
    metadata = {"name": name, "step": str(c.steps), "sd_checkpoint_name": "steady-tiny",
                "steady_training": json.dumps({"config": c.to_dict(), "seconds": round(seconds),
                                               "loss": log, "reading_without": before, "reading_with": after})}  # fmt: skip
    save_atomic({"emb_params": vector.detach().float()}, out, metadata)
    print(f"saved {out} ({out.stat().st_size} bytes) after {seconds:.0f} s; colour without {before}, with {after}",
          flush=True)  # fmt: skip
    return {"seconds": seconds, "loss": log, "without": before, "with": after}


def reading(base: Base, c: EmbeddingConfig, swap: tuple[int, torch.Tensor] | None) -> dict[str, float]:
    """The checker's accuracy on ``eval_images`` full captions of the colour with the word, sampled
    as training samples (20 Euler steps, CFG 5), with the vector in place or without (the bare word)."""
    from steady.tiny.evaluate import extension_prompts, score
    from steady.tiny.train import sample_images

    prompts = extension_prompts("aqua", c.eval_images)

    def tokens(texts: list[str]) -> torch.Tensor:
        return token_ids(base.tokenizer, texts)

    def run() -> np.ndarray:
        return sample_images(base.unet, base.text, base.vae, tokens, [p.prompt for p in prompts],
                             [p.seed for p in prompts], base.scale)  # fmt: skip

    if swap is None:
        images = run()
    else:
        with replaced_row(base.text, *swap):
            images = run()
    return {k: round(v, 3) for k, v in score(prompts, list(images)).accuracy.items()}
