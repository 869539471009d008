"""Textual-inversion embeddings: found by the words of a prompt, described from their tensor
names and shapes, hashed as A1111 does. Torch-free (a .safetensors header, a pickle's shapes read
by an Unpickler that runs nothing).

    used = used_embeddings("a cat, easynegative", "", settings())   # [EmbeddingInfo(name='easynegative', ...)]
    embedding_hash(used[0], settings())                            # '0123456789ab', A1111's "TI hashes"

After the folder's files, the embeddings that ship with steady (``aqua``, trained on the embedded
model) are used the same way; a file of the user's with the same name wins.

A1111's rule: a file in the embeddings folder (sub-folders too) is used when its name, the file's
name without its extension, stands as a word in the prompt or the negative prompt. The CLIP
tokenizer reads the text in lower case and splits it at anything that is not a letter or a
digit, so the match ignores case and a word ends where letters and digits end
(``easynegative,`` and ``(easynegative:1.2)`` name it; ``easynegatives`` does not). When two names
overlap, the longer is read first, as A1111 does.

Layouts (the tensors, the vectors in rows):
    a1111            .safetensors with ``emb_params`` (vectors, width): SD 1.x / SD 2.x
    sdxl             .safetensors with ``clip_l`` (vectors, 768) and ``clip_g`` (vectors, 1280)
    string_to_param  A1111's .pt (torch.save): ``string_to_param['*']`` (vectors, width); a pickle,
                     read only with --allow-pickle, by torch.load(weights_only=True)
    diffusers        ``learned_embeds`` .safetensors/.bin: one tensor, (width,) or (vectors, width)

Architecture from the widths: 768 SD 1, 1024 SD 2, a clip_l/clip_g pair SDXL. An embedding of
several vectors takes as many token positions in the prompt (counted in A1111's 75-token chunks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.config import Settings, package_dir
from steady.errors import BadInput
from steady.models.detect import ModelInfo, read_weights_file
from steady.models.hashing import sha256
from steady.models.pickled import pickle_tree_shapes

EMBEDDING_EXT = (".safetensors", ".pt", ".bin")  # what A1111 reads from its embeddings folder (images aside)
MAX_VECTORS = 75  # one 75-token chunk: an embedding longer than that cannot be placed
_WIDTH_ARCH = {768: "sd1", 1024: "sd2"}
ARCH_NAMES = {"sd1": "SD 1", "sd2": "SD 2", "sdxl": "SDXL"}


@dataclass(frozen=True)
class EmbeddingInfo:
    """What an embedding file is, read from its tensor names and shapes."""

    path: Path
    name: str  # the file's name without its extension: the word that uses it
    format: str  # 'safetensors' | 'pickle'
    layout: str  # 'a1111' | 'sdxl' | 'string_to_param' | 'diffusers' | '' (none of them)
    keys: tuple[str, ...]  # the tensor of each text encoder, in the pipeline's order
    vectors: int  # token positions it takes
    widths: tuple[int, ...]  # its width for each text encoder
    arch: str  # 'sd1' | 'sd2' | 'sdxl' | '' (the widths do not tell)
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "format": self.format, "layout": self.layout,
                "vectors": self.vectors, "widths": list(self.widths), "arch": self.arch,
                "size_bytes": self.size_bytes}  # fmt: skip


def inspect_embedding(path: str | Path, argument: str = "embedding") -> EmbeddingInfo:
    """Describe an embedding file; BadInput naming ``argument`` when it cannot be read."""
    p = Path(path)
    read = read_weights_file(p, argument, read_pickle=pickle_tree_shapes)
    shapes, fmt, size = read.shapes, read.fmt, read.size
    layout, keys = _layout(shapes)
    rows = [shapes[k] for k in keys]
    vectors = (rows[0][0] if len(rows[0]) == 2 else 1) if rows else 0
    widths = tuple(shape[-1] for shape in rows)
    if layout == "sdxl":
        arch = "sdxl"
    else:
        arch = _WIDTH_ARCH.get(widths[0], "") if widths else ""
    return EmbeddingInfo(path=p, name=p.stem, format=fmt, layout=layout, keys=keys, vectors=vectors, widths=widths,
                         arch=arch, size_bytes=size)  # fmt: skip


def _layout(shapes: dict[str, tuple[int, ...]]) -> tuple[str, tuple[str, ...]]:
    def rows(key: str) -> bool:
        return key in shapes and len(shapes[key]) in (1, 2) and all(shapes[key])

    if rows("clip_l") and rows("clip_g"):
        return "sdxl", ("clip_l", "clip_g")
    if rows("emb_params"):
        return "a1111", ("emb_params",)
    if rows("string_to_param.*"):
        return "string_to_param", ("string_to_param.*",)
    if len(shapes) == 1 and rows(next(iter(shapes))):
        return "diffusers", (next(iter(shapes)),)
    return "", ()


def embedding_files(folder: Path) -> list[Path]:
    """The embedding files under ``folder`` (sub-folders too), sorted by their path there."""
    from steady.models.resolve import candidates

    return [p for p in candidates(folder) if p.suffix.lower() in EMBEDDING_EXT and p.is_file()]


def list_embeddings(settings: Settings, errors: list[tuple[Path, str]] | None = None) -> list[EmbeddingInfo]:
    """Every embedding under the embeddings folder, described; files that cannot be read are left
    out (pass ``errors`` to receive (path, reason) for each)."""
    out = []
    for p in embedding_files(settings.embeddings_dir):
        try:
            out.append(inspect_embedding(p))
        except BadInput as exc:
            if errors is not None:
                errors.append((p, exc.why))
    return out


def mention(name: str) -> re.Pattern[str]:
    """The pattern of ``name`` standing as a word (no letter or digit on either side), any case."""
    return re.compile(r"(?<![^\W_])" + re.escape(name) + r"(?![^\W_])", re.IGNORECASE)


def mentioned_names(texts: tuple[str, ...], names: list[str]) -> list[str]:
    """The names among ``names`` that stand as words in any of ``texts``, longest first (a longer
    name is read before a shorter one inside it), each once."""
    found: list[str] = []
    remaining = list(texts)
    for name in sorted(set(names), key=lambda n: (-len(n), n.lower())):
        pattern = mention(name)
        if any(pattern.search(text) for text in remaining):
            found.append(name)
            remaining = [pattern.sub(" ", text) for text in remaining]
    return found


def shipped_embedding_files() -> list[Path]:
    """The embeddings that ship in the package (trained on the embedded model by
    ``steady.tiny.teach embedding``: ``aqua``), used after the embeddings folder's."""
    return sorted(p for p in (package_dir() / "tiny" / "embeddings").glob("*.safetensors") if p.is_file())


def used_embeddings(texts: tuple[str, ...], settings: Settings) -> tuple[list[EmbeddingInfo], list[str]]:
    """The embeddings the words of ``texts`` (LoRA tags already out) use, and a warning line for
    each one that names a file that cannot be read. A name two files share takes the first
    (by path), as A1111 does, with a warning."""
    files = embedding_files(settings.embeddings_dir)
    own = {p.stem for p in files}
    files += [p for p in shipped_embedding_files() if p.stem not in own]  # after the user's, which win
    if not files:
        return [], []
    by_name: dict[str, list[Path]] = {}
    for p in files:
        by_name.setdefault(p.stem, []).append(p)
    infos, warnings = [], []
    for name in mentioned_names(texts, list(by_name)):
        paths = by_name[name]
        if len(paths) > 1:
            warnings.append(f"embedding {name}: {len(paths)} files have this name; used {paths[0]}")
        try:
            infos.append(inspect_embedding(paths[0]))
        except BadInput as exc:
            warnings.append(f"embedding {name} skipped: {paths[0].name} {exc.why}")
    return infos, warnings


def embedding_hash(info: EmbeddingInfo, settings: Settings) -> str:
    """A1111's short embedding hash, as its "TI hashes" writes it: the first 12 hex digits of the
    file's sha256."""
    return sha256(info.path, settings)[:12]


def model_text_widths(model: ModelInfo) -> tuple[int, ...]:
    """The token-embedding width of each of ``model``'s text encoders (SDXL: CLIP-L's, OpenCLIP-G's)."""
    import json

    parts = ("text_encoder", "text_encoder_2") if model.arch == "sdxl" else ("text_encoder",)
    widths = []
    for part in parts:
        if model.format == "diffusers":
            try:
                value = json.loads((model.path / part / "config.json").read_text(encoding="utf-8")).get("hidden_size")
            except (OSError, ValueError, AttributeError):
                value = None
        else:
            value = model.overrides.get(part, {}).get("hidden_size")
        if not isinstance(value, int):
            value = {"sd1": (768,), "sd2": (1024,), "sdxl": (768, 1280)}.get(model.arch, (0, 0))[len(widths)]
        widths.append(value)
    return tuple(widths)


def unfit_reason(info: EmbeddingInfo, model: ModelInfo) -> str:
    """Why ``info`` cannot be used with ``model`` (a warning: the word stays plain text), or ""."""
    if not info.layout:
        return ("is not a textual-inversion embedding (no emb_params, clip_l/clip_g, string_to_param "
                "or single learned tensor)")  # fmt: skip
    if info.vectors > MAX_VECTORS:
        return f"has {info.vectors} vectors; at most {MAX_VECTORS} fit in one 75-token chunk"
    widths = model_text_widths(model)
    if len(info.widths) != len(widths):
        have = ARCH_NAMES.get(info.arch, f"{len(info.widths)}-encoder")
        return f"is an {have} embedding and the model is {ARCH_NAMES.get(model.arch, model.arch)}"
    if info.widths != widths:
        return (f"is {'/'.join(map(str, info.widths))} wide and the model's text encoder takes "
                f"{'/'.join(map(str, widths))}")  # fmt: skip
    return ""


def pickle_refusal(info: EmbeddingInfo, argument: str) -> BadInput:
    return BadInput(argument, info.name, f"the embedding {info.path} is a pickle ({info.path.suffix}), which can run "
                                         "code when loaded; convert it to .safetensors or pass --allow-pickle to "
                                         "load it with torch.load(weights_only=True)")  # fmt: skip
