"""Step 3 of steady.worker.recipe, the embeddings half: an image's textual-inversion embeddings in
the text encoders' token tables, and out again after. Part of the worker (torch).

    warnings = apply_embeddings(pipe, held.embeddings, params)   # before encoding
    text = with_embedding_tokens(text, held.embeddings)          # the words -> the tokens that carry them

Each embedding the image uses (``params.extra["embeddings"]``, found by steady.request.check from
the words of its prompts) gets a token of its own, ``steadyti<N>x``, added to a copy of each
tokenizer, and its vectors appended as new rows of a copy of each text encoder's token table;
SDXL's two encoders take the clip_l and clip_g halves under the same token. A multi-vector
embedding takes one token per vector (``steadyti<N>x``, ``steadyti<N>x_1``, ...), placed together in
one 75-token chunk by steady.worker.encode, as A1111 places them. The prompt's words are replaced
by the first token of each (``with_embedding_tokens``), after its LoRA tags are out.

Removal puts the pipeline's own tokenizer and token-table module back, with their own tensor,
untouched: an image after them that does not use the embeddings is made by the base model's exact
weights. The set is kept while consecutive images ask for the same files.

Why not diffusers' load_textual_inversion: it resizes the token table with transformers'
``mean_resizing`` (a covariance of the whole vocabulary, each load) and its unload renumbers the
tokenizer's added tokens in place; the original objects are what an exact restore needs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from steady.params import ImageParams

TOKEN_PREFIX = "steadyti"


@dataclass
class LoadedEmbeddings:
    """What apply_embeddings put on a pipeline, and what to put back."""

    hashes: tuple[str, ...] = ()  # the files loaded, by hash (the set kept while images ask for it)
    words: dict[str, str] = field(default_factory=dict)  # embedding name -> its first token
    originals: list[tuple[str, Any, Any, Any, int]] = field(default_factory=list)  # (tokenizer attr, tokenizer, encoder, module, rows)


def apply_embeddings(pipe: Any, loaded: LoadedEmbeddings, params: ImageParams) -> list[str]:
    """The embeddings of ``params.extra["embeddings"]`` in the pipeline's text encoders, and no
    others. Returns one warning line per embedding that could not be loaded (its word stays text)."""
    entries = list(params.extra.get("embeddings", []))
    hashes = tuple(str(e["hash"]) for e in entries)
    if hashes == loaded.hashes:
        return []
    remove_embeddings(pipe, loaded)
    if not entries:
        return []
    pairs = [("tokenizer", pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None and getattr(pipe, "tokenizer_2", None) is not None:
        pairs.append(("tokenizer_2", pipe.text_encoder_2))
    vectors: dict[str, list[Any]] = {}
    warnings = []
    for entry in entries:
        try:
            vectors[entry["name"]] = _read(entry, len(pairs), bool(params.extra.get("allow_pickle")))
            _check_widths(vectors[entry["name"]], [enc.get_input_embeddings().weight.shape[-1] for _, enc in pairs])
        except Exception as exc:  # noqa: BLE001 - any file that cannot be used is skipped, and said so
            vectors.pop(entry["name"], None)
            warnings.append(f"embedding {entry['name']} skipped: cannot be loaded ({type(exc).__name__}: {_first_line(exc)})")
    # "steadyti<N>x": no token is the start of another (steadyti1x, steadyti10x), so diffusers' own
    # prompt conversion (img2img's pipelines, which read the prompt themselves) expands each alone.
    tokens = {name: f"{TOKEN_PREFIX}{i}x" for i, name in enumerate(vectors)}
    for index, (attr, encoder) in enumerate(pairs):
        _extend(pipe, attr, encoder, {tokens[name]: rows[index] for name, rows in vectors.items()}, loaded)
    loaded.hashes = hashes
    loaded.words = tokens
    return warnings


def remove_embeddings(pipe: Any, loaded: LoadedEmbeddings) -> None:
    """The pipeline's own tokenizers and token tables back, as they were."""
    for attr, tokenizer, encoder, module, rows in reversed(loaded.originals):
        setattr(pipe, attr, tokenizer)
        encoder.set_input_embeddings(module)
        encoder.config.vocab_size = rows
    loaded.originals.clear()
    loaded.words = {}
    loaded.hashes = ()


def with_embedding_tokens(text: str, loaded: LoadedEmbeddings) -> str:
    """``text`` with each loaded embedding's name, where it stands as a word, replaced by its token."""
    if not loaded.words:
        return text
    from steady.models.embeddings import mention

    for name in sorted(loaded.words, key=lambda n: (-len(n), n.lower())):  # longer names first, as check found them
        text = mention(name).sub(loaded.words[name], text)
    return text


def embedding_runs(tokenizer: Any) -> dict[int, list[int]]:
    """{first token id: the ids of all its vectors} of the embeddings in ``tokenizer`` ({} when none)."""
    added = getattr(tokenizer, "added_tokens_encoder", {})
    runs: dict[int, list[int]] = {}
    for token, token_id in added.items():
        if token.startswith(TOKEN_PREFIX) and "_" not in token:
            ids, i = [token_id], 1
            while f"{token}_{i}" in added:
                ids.append(added[f"{token}_{i}"])
                i += 1
            runs[token_id] = ids
    return runs


def _extend(pipe: Any, attr: str, encoder: Any, rows_by_token: dict[str, Any], loaded: LoadedEmbeddings) -> None:
    """A copy of tokenizer ``attr`` with a token per vector, and a new token table: the old rows
    (copied) and the vectors. The originals are kept in ``loaded`` for remove_embeddings."""
    import torch

    tokenizer = getattr(pipe, attr)
    module = encoder.get_input_embeddings()
    weight = module.weight
    rows = weight.shape[0]
    loaded.originals.append((attr, tokenizer, encoder, module, int(encoder.config.vocab_size)))
    if not rows_by_token:
        return
    mine = copy.deepcopy(tokenizer)
    placed: dict[int, Any] = {}
    for token, vectors in rows_by_token.items():
        names = [token] + [f"{token}_{i}" for i in range(1, vectors.shape[0])]
        mine.add_tokens(names)
        for name, vector in zip(names, vectors, strict=True):
            placed[mine.convert_tokens_to_ids(name)] = vector
    size = max(rows, max(placed) + 1)
    with torch.no_grad():
        table = torch.empty((size, weight.shape[1]), dtype=weight.dtype, device=weight.device)
        table[:rows] = weight.detach()
        table[rows:] = 0
        for token_id, vector in placed.items():
            table[token_id] = vector.to(dtype=weight.dtype, device=weight.device)
    setattr(pipe, attr, mine)
    encoder.set_input_embeddings(torch.nn.Embedding.from_pretrained(table, freeze=True))
    encoder.config.vocab_size = size


def _read(entry: dict[str, Any], encoders: int, allow_pickle: bool) -> list[Any]:
    """The (vectors, width) tensor of each text encoder from an embedding file, in float32."""
    import torch

    path = str(entry["path"])
    if path.lower().endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path, device="cpu")
    else:
        from steady.worker.tensorfile import pickled_state

        state = pickled_state(path, allow_pickle)
    if not isinstance(state, dict):
        raise ValueError("the file does not hold a dict of tensors")
    if "clip_l" in state and "clip_g" in state:
        found = [state["clip_l"], state["clip_g"]]
    elif "emb_params" in state:
        found = [state["emb_params"]]
    elif isinstance(state.get("string_to_param"), dict) and "*" in state["string_to_param"]:
        found = [state["string_to_param"]["*"]]
    elif len(state) == 1 and isinstance(next(iter(state.values())), torch.Tensor):
        found = [next(iter(state.values()))]
    else:
        raise ValueError("unknown layout (no emb_params, clip_l/clip_g, string_to_param or single tensor)")
    tensors = []
    for t in found:
        if not isinstance(t, torch.Tensor) or t.ndim not in (1, 2) or t.numel() == 0:
            raise ValueError("the embedding is not a (vectors, width) tensor")
        t = t.detach().float().reshape(-1, t.shape[-1])
        if not torch.isfinite(t).all():
            raise ValueError("the embedding holds NaN or infinite values")
        tensors.append(t)
    if len(tensors) != encoders:
        raise ValueError(f"it has vectors for {len(tensors)} text encoder(s) and the model has {encoders}")
    if len({t.shape[0] for t in tensors}) != 1:
        raise ValueError("its clip_l and clip_g halves have different numbers of vectors")
    return tensors


def _check_widths(tensors: list[Any], widths: list[int]) -> None:
    have = [t.shape[-1] for t in tensors]
    if have != widths:
        raise ValueError(f"it is {'/'.join(map(str, have))} wide and the text encoder takes {'/'.join(map(str, widths))}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 200 else line[:200] + "…"
