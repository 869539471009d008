"""A1111-compatible prompt embeddings: emphasis weights, BREAK and prompts longer than 75 tokens.

    if needs_weighting(pipe, params.prompt, params.negative_prompt):
        embeds = encode_pair(pipe, params.prompt, params.negative_prompt, params.clip_skip)
        pipe(prompt_embeds=embeds.prompt, negative_prompt_embeds=embeds.negative, ...)

As in A1111: the prompt is parsed into weighted fragments (steady.prompts), tokenized fragment by
fragment, cut into chunks of 75 tokens (at a BREAK, or when a chunk is full), each chunk encoded
as BOS + 75 tokens + EOS by CLIP and the chunks concatenated, so nothing past token 75 is lost.
Each token's embedding is multiplied by its weight and the whole is rescaled to its original
mean ("Original" emphasis). Prompt and negative prompt are padded to the same number of chunks.
Plain prompts of at most 75 tokens keep diffusers' own encoding (identical images to before).
SD 1.x/2.x pipelines only; SDXL prompts go to diffusers unweighted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from steady.prompts import BREAK, parse_emphasis, uses_emphasis

CHUNK = 75


@dataclass
class PromptEmbeds:
    prompt: torch.Tensor  # (1, 77 * chunks, dim)
    negative: torch.Tensor


def supported(pipe: Any) -> bool:
    return type(pipe).__name__ == "StableDiffusionPipeline"


def needs_weighting(pipe: Any, prompt: str, negative: str) -> bool:
    if not supported(pipe):
        return False
    if uses_emphasis(prompt) or uses_emphasis(negative):
        return True
    tokenizer = pipe.tokenizer
    return any(len(tokenizer(text, add_special_tokens=False).input_ids) > CHUNK for text in (prompt, negative))


def _chunks(tokenizer: Any, text: str) -> list[tuple[list[int], list[float]]]:
    chunks: list[tuple[list[int], list[float]]] = []
    ids: list[int] = []
    weights: list[float] = []
    for fragment in parse_emphasis(text):
        if fragment is BREAK:
            chunks.append((ids, weights))
            ids, weights = [], []
            continue
        for token in tokenizer(fragment.text, add_special_tokens=False).input_ids:
            if len(ids) == CHUNK:
                chunks.append((ids, weights))
                ids, weights = [], []
            ids.append(token)
            weights.append(fragment.weight)
    chunks.append((ids, weights))
    return chunks


def _encode(pipe: Any, chunks: list[tuple[list[int], list[float]]], clip_skip: int) -> torch.Tensor:
    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = pipe._execution_device
    parts = []
    for ids, weights in chunks:
        fill = CHUNK - len(ids)
        input_ids = torch.tensor([[bos, *ids, eos, *([pad] * fill)]], device=device)
        weight = torch.tensor([1.0, *weights, 1.0, *([1.0] * fill)], device=device)
        if clip_skip > 1:
            hidden = encoder(input_ids, output_hidden_states=True).hidden_states[-clip_skip]
            z = encoder.text_model.final_layer_norm(hidden)
        else:
            z = encoder(input_ids)[0]
        z = z.float()
        original_mean = z.mean()
        z = z * weight[None, :, None]
        z = z * (original_mean / z.mean())
        parts.append(z)
    return torch.cat(parts, dim=1).to(encoder.dtype)


def encode_pair(pipe: Any, prompt: str, negative: str, clip_skip: int = 1) -> PromptEmbeds:
    return encode_pairs(pipe, [(prompt, negative)], clip_skip)[0]


@torch.inference_mode()
def encode_pairs(pipe: Any, pairs: list[tuple[str, str]], clip_skip: int = 1) -> list[PromptEmbeds]:
    """Weighted embeddings of (prompt, negative) pairs, all padded with empty chunks to the same
    number of 75-token chunks, so that one image's conditioning can be swapped between steps
    (A1111 prompt editing, steady.prompt_schedule) as A1111 pads it."""
    chunked = [(_chunks(pipe.tokenizer, p), _chunks(pipe.tokenizer, n)) for p, n in pairs]
    count = max(max(len(p), len(n)) for p, n in chunked)

    def padded(chunks: list) -> list:
        return chunks + [([], [])] * (count - len(chunks))

    return [PromptEmbeds(_encode(pipe, padded(p), clip_skip), _encode(pipe, padded(n), clip_skip)) for p, n in chunked]
