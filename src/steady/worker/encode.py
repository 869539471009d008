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

SDXL as A1111 does it: each chunk goes through both text encoders (CLIP-L and OpenCLIP-G, the
penultimate layer of each, or earlier with clip skip), each encoder's tokens are weighted and
mean-restored on their own, and the two are concatenated per token; the pooled embedding is
OpenCLIP-G's of the first chunk, unweighted. An empty negative prompt is all zeros, as diffusers
does for SDXL (`force_zeros_for_empty_prompt`). An SDXL refiner (one text encoder) is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from steady.prompts.syntax import BREAK, parse_emphasis, uses_emphasis
from steady.worker.embeddings import embedding_runs

CHUNK = 75


@dataclass
class PromptEmbeds:
    prompt: torch.Tensor  # (1, 77 * chunks, dim)
    negative: torch.Tensor
    pooled: torch.Tensor | None = None  # SDXL: (1, projection dim)
    negative_pooled: torch.Tensor | None = None


def is_xl(pipe: Any) -> bool:
    return type(pipe).__name__ == "StableDiffusionXLPipeline"


def supported(pipe: Any) -> bool:
    if is_xl(pipe):
        return getattr(pipe, "text_encoder", None) is not None and getattr(pipe, "text_encoder_2", None) is not None
    return type(pipe).__name__ == "StableDiffusionPipeline"


def _encoders(pipe: Any) -> list[tuple[Any, Any]]:
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if is_xl(pipe):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def needs_weighting(pipe: Any, prompt: str, negative: str) -> bool:
    if not supported(pipe):
        return False
    if uses_emphasis(prompt) or uses_emphasis(negative):
        return True
    tokenizer = pipe.tokenizer
    if embedding_runs(tokenizer):  # textual-inversion embeddings are placed in chunks as A1111 places them
        return True
    return any(len(tokenizer(text, add_special_tokens=False).input_ids) > CHUNK for text in (prompt, negative))


def _chunks(tokenizer: Any, text: str) -> list[tuple[list[int], list[float]]]:
    """The text's tokens and weights in 75-token chunks. A textual-inversion embedding (its first
    token in the text, steady.worker.embeddings) takes one position per vector, all in one chunk:
    when they do not fit in what is left of a chunk, the chunk ends there, as in A1111."""
    chunks: list[tuple[list[int], list[float]]] = []
    ids: list[int] = []
    weights: list[float] = []
    runs = embedding_runs(tokenizer)
    for fragment in parse_emphasis(text):
        if fragment is BREAK:
            chunks.append((ids, weights))
            ids, weights = [], []
            continue
        for token in tokenizer(fragment.text, add_special_tokens=False).input_ids:
            run = runs.get(token, [token])
            if len(ids) + len(run) > CHUNK:
                chunks.append((ids, weights))
                ids, weights = [], []
            ids.extend(run)
            weights.extend([fragment.weight] * len(run))
    chunks.append((ids, weights))
    return chunks


def _hidden(encoder: Any, input_ids: torch.Tensor, clip_skip: int, xl: bool) -> tuple[torch.Tensor, Any]:
    """One chunk through one text encoder: (per-token hidden states, pooled or None)."""
    if xl:  # SDXL reads the penultimate layer, without the final layer norm, as diffusers and A1111 do
        out = encoder(input_ids, output_hidden_states=True)
        pooled = out[0] if out[0].ndim == 2 else None
        return out.hidden_states[-(clip_skip + 1)], pooled
    if clip_skip > 1:
        hidden = encoder(input_ids, output_hidden_states=True).hidden_states[-clip_skip]
        return encoder.text_model.final_layer_norm(hidden), None
    return encoder(input_ids)[0], None


def _encode(pipe: Any, tokenizer: Any, encoder: Any, chunks: list[tuple[list[int], list[float]]],
            clip_skip: int) -> tuple[torch.Tensor, Any]:
    """Weighted hidden states of every chunk, concatenated, and the first chunk's pooled output."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = pipe._execution_device
    parts, first_pooled = [], None
    for ids, weights in chunks:
        fill = CHUNK - len(ids)
        input_ids = torch.tensor([[bos, *ids, eos, *([pad] * fill)]], device=device)
        weight = torch.tensor([1.0, *weights, 1.0, *([1.0] * fill)], device=device)
        z, pooled = _hidden(encoder, input_ids, clip_skip, is_xl(pipe))
        if first_pooled is None:
            first_pooled = pooled
        z = z.float()
        original_mean = z.mean()
        z = z * weight[None, :, None]
        z = z * (original_mean / z.mean())
        parts.append(z)
    return torch.cat(parts, dim=1).to(encoder.dtype), first_pooled


def _embed(pipe: Any, chunked: list[list[tuple[list[int], list[float]]]], count: int,
           clip_skip: int) -> tuple[torch.Tensor, Any]:
    """One text as every encoder sees it (its chunks per encoder), padded with empty chunks to `count`."""
    hidden, pooled = [], None
    for (tokenizer, encoder), chunks in zip(_encoders(pipe), chunked, strict=True):
        z, pooled = _encode(pipe, tokenizer, encoder, chunks + [([], [])] * (count - len(chunks)), clip_skip)
        hidden.append(z)
    return torch.cat(hidden, dim=-1), pooled


def encode_pair(pipe: Any, prompt: str, negative: str, clip_skip: int = 1) -> PromptEmbeds:
    return encode_pairs(pipe, [(prompt, negative)], clip_skip)[0]


@torch.inference_mode()
def encode_pairs(pipe: Any, pairs: list[tuple[str, str]], clip_skip: int = 1) -> list[PromptEmbeds]:
    """Weighted embeddings of (prompt, negative) pairs, all padded with empty chunks to the same
    number of 75-token chunks, so that one image's conditioning can be swapped between steps
    (A1111 prompt editing, steady.prompts.schedule) as A1111 pads it."""
    texts = dict.fromkeys(text for pair in pairs for text in pair)  # each distinct text chunked and encoded once
    chunked = {text: [_chunks(tokenizer, text) for tokenizer, _ in _encoders(pipe)] for text in texts}
    count = max(len(chunks) for per_encoder in chunked.values() for chunks in per_encoder)
    embedded = {text: _embed(pipe, chunked[text], count, clip_skip) for text in texts}
    zero_empty_negative = is_xl(pipe) and pipe.config.force_zeros_for_empty_prompt
    out = []
    for prompt, negative in pairs:
        z, pooled = embedded[prompt]
        nz, npooled = embedded[negative]
        if negative == "" and zero_empty_negative:
            nz, npooled = torch.zeros_like(nz), torch.zeros_like(npooled)
        out.append(PromptEmbeds(z, nz, pooled, npooled))
    return out
