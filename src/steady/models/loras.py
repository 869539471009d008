"""LoRA files: found by name, described from their tensor names and shapes, hashed as A1111 does.
Torch-free: a .safetensors file's JSON header (steady.models.detect), a pickle's shapes read by an
Unpickler that runs nothing (steady.models.pickled).

    info = find_lora("film-grain", settings())     # LoraInfo, or BadInput with the closest names
    info.arch, info.kind, info.layout              # 'sd1', 'LoRA', 'kohya'
    lora_hash(info, settings())                    # '0123456789ab', as A1111's "Lora hashes"

Names, as A1111 resolves ``<lora:NAME:W>``: the file's name without its extension, or its path
under the LoRA folder (``styles/film-grain``) when two files share a name; then the same ignoring
case; then the name the trainer gave it (kohya's ``ss_output_name``, A1111's alias).

After the LoRA folder, the LoRAs that ship with steady (``shipped_lora_dir()``: ones trained on the
embedded model, e.g. ``tiny-star``) are found by their file name; a user's file of the same name wins.

Layouts diffusers' own loader reads (steady.worker.lora hands the file to it):
    kohya      lora_unet_* / lora_te_* (SD 1/2), lora_te1_* / lora_te2_* (SDXL), with
               .lora_down / .lora_up / .alpha: what A1111, kohya's sd-scripts and model sites use
    diffusers  unet.* / text_encoder.* / text_encoder_2.*, with lora_A / lora_B (peft), or
               lora.down / lora.up (older diffusers)

Kinds: LoRA; LoCon (LyCORIS' LoRA on the 3x3 convolutions too); DoRA; LoHa and LoKr (LyCORIS'
Hadamard and Kronecker products), which diffusers cannot load for SD 1/2/XL and which are
therefore skipped with a warning, as are IA3, OFT, GLoRA and full-weight differences.

Architecture, from the shapes first: a second text encoder means SDXL; otherwise the width of
the cross-attention context (the text encoder's output) the UNet's attn2.to_k reads: 768 SD 1,
1024 SD 2, 2048 SDXL; otherwise the text encoder's width (768 SD 1, 1024 SD 2); otherwise the
training metadata (ss_base_model_version, ss_v2, modelspec.architecture); otherwise unknown ("").
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.config import Settings, package_dir
from steady.errors import BadInput
from steady.models.detect import ModelInfo, read_weights_file
from steady.models.hashing import sha256, tensor_data_sha256

LORA_EXT = (".safetensors", ".pt", ".ckpt")  # what A1111 lists in its Lora folder
SUPPORTED_KINDS = ("LoRA", "LoCon", "DoRA")
ARCH_NAMES = {"sd1": "SD 1", "sd2": "SD 2", "sdxl": "SDXL"}
CONTEXT_DIM = {"sd1": 768, "sd2": 1024, "sdxl": 2048}  # the cross-attention context of each family
_TEXT_WIDTH = {768: "sd1", 1024: "sd2"}
_CLOSEST = 3

# Which part of the pipeline a key belongs to, by its prefix.
_PARTS = (("lora_unet_", "unet"), ("lora_te2_", "text_encoder_2"), ("lora_te1_", "text_encoder"),
          ("lora_te_", "text_encoder"), ("unet.", "unet"), ("text_encoder_2.", "text_encoder_2"),
          ("text_encoder.", "text_encoder"))  # fmt: skip
# The kind of network, by what a key's weight is called.
_KIND_MARKS = (("hada_", "LoHa"), ("lokr_", "LoKr"), ("oft_", "OFT"), (".a1.weight", "GLoRA"), (".on_input", "IA3"),
               (".diff", "full"), ("dora_scale", "DoRA"), ("lora_magnitude_vector", "DoRA"))  # fmt: skip
_DOWN = ("lora_down.weight", "lora_A.weight", "lora.down.weight", "_lora.down.weight", "hada_w1_b")
_ATTN2_K = re.compile(r"attn2[._](?:processor[._])?to_k(?:_lora)?[._]")
_TE_Q = re.compile(r"self_attn[._]q_proj[._]")


@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA file is, read from its tensor names and shapes."""

    path: Path
    name: str  # the file's name without its extension: what <lora:NAME> says
    rel: str  # its path under the LoRA folder, without the extension ("" when outside it)
    format: str  # 'safetensors' | 'pickle'
    layout: str  # 'kohya' | 'diffusers' | '' (neither: not a Stable Diffusion LoRA)
    kind: str  # 'LoRA' | 'LoCon' | 'DoRA' | 'LoHa' | 'LoKr' | 'OFT' | 'GLoRA' | 'IA3' | 'full'
    arch: str  # 'sd1' | 'sd2' | 'sdxl' | '' (the tensors do not tell)
    context_dim: int | None  # the cross-attention context width its UNet part was made for
    parts: tuple[str, ...]  # 'unet', 'text_encoder', 'text_encoder_2'
    alias: str  # the name its trainer gave it (ss_output_name), or ""
    metadata_hash: str  # kohya's own record of the tensor-data hash (sshs_model_hash), or ""
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rel": self.rel, "path": str(self.path), "format": self.format,
                "layout": self.layout, "kind": self.kind, "arch": self.arch, "context_dim": self.context_dim,
                "parts": list(self.parts), "alias": self.alias, "size_bytes": self.size_bytes}  # fmt: skip


def inspect_lora(path: str | Path, lora_dir: Path | None = None, argument: str = "lora") -> LoraInfo:
    """Describe a LoRA file; BadInput naming ``argument`` when it is missing or cannot be read."""
    p = Path(path)
    read = read_weights_file(p, argument)
    shapes, fmt, size, metadata = read.shapes, read.fmt, read.size, read.metadata
    parts = tuple(dict.fromkeys(part for key in shapes if (part := _part(key))))
    layout = "" if not parts else "kohya" if any(k.startswith("lora_") for k in shapes) else "diffusers"
    context = _width(shapes, _ATTN2_K, "unet")
    rel = ""
    if lora_dir is not None and p.is_relative_to(lora_dir):
        rel = p.relative_to(lora_dir).with_suffix("").as_posix()
    return LoraInfo(path=p, name=p.stem, rel=rel, format=fmt, layout=layout, kind=_kind(shapes),
                    arch=_arch(parts, context, _width(shapes, _TE_Q, "text_encoder"), metadata), context_dim=context,
                    parts=parts, alias=str(metadata.get("ss_output_name", "") or ""),
                    metadata_hash=_hex64(metadata.get("sshs_model_hash")), size_bytes=size)  # fmt: skip


def _part(key: str) -> str:
    for prefix, part in _PARTS:
        if key.startswith(prefix):
            return part
    return ""


def _kind(shapes: dict[str, tuple[int, ...]]) -> str:
    for mark, kind in _KIND_MARKS:
        if any(mark in key for key in shapes):
            return kind
    # LoCon: a LoRA of the 3x3 convolutions too (a 1x1 projection is an ordinary LoRA's).
    if any(len(shape) == 4 and shape[2:] != (1, 1) for key, shape in shapes.items() if key.endswith(_DOWN)):
        return "LoCon"
    return "LoRA"


def _width(shapes: dict[str, tuple[int, ...]], module: re.Pattern[str], part: str) -> int | None:
    """The input width of the first ``module`` of ``part`` with a down-projection in the file."""
    for key, shape in shapes.items():
        if _part(key) == part and module.search(key) and key.endswith(_DOWN) and len(shape) == 2:
            return shape[1]
    return None


def _arch(parts: tuple[str, ...], context: int | None, text_width: int | None, metadata: dict[str, Any]) -> str:
    if "text_encoder_2" in parts:
        return "sdxl"
    for arch, dim in CONTEXT_DIM.items():
        if context == dim:
            return arch
    if context is None and text_width in _TEXT_WIDTH and "unet" not in parts:
        return _TEXT_WIDTH[text_width]
    if context is not None:  # a width no family has (a test model's): the shapes have spoken
        return ""
    base = str(metadata.get("ss_base_model_version", "")) + " " + str(metadata.get("modelspec.architecture", ""))
    if "sdxl" in base or "stable-diffusion-xl" in base:
        return "sdxl"
    if str(metadata.get("ss_v2", "")) == "True" or "sd_v2" in base or "stable-diffusion-v2" in base:
        return "sd2"
    if "sd_v1" in base or "stable-diffusion-v1" in base:
        return "sd1"
    return ""


def _hex64(value: Any) -> str:
    text = str(value or "").strip().lower()
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else ""


# ---------------------------------------------------------------------------------------------
# finding
# ---------------------------------------------------------------------------------------------
def lora_files(lora_dir: Path) -> list[Path]:
    """The LoRA files under ``lora_dir`` (sub-folders too), sorted by their path there."""
    from steady.models.resolve import candidates

    return [p for p in candidates(lora_dir) if p.suffix.lower() in LORA_EXT and p.is_file()]


def _roots(settings: Settings) -> dict[Path, Path]:
    """{LoRA file: the LoRA folder it is under}, over every LoRA folder (lora_dir, and A1111's
    models/LyCORIS when a1111_dir set the folders); the first folder wins a path found twice."""
    found: dict[Path, Path] = {}
    for root in settings.lora_dirs:
        for p in lora_files(root):
            found.setdefault(p, root)
    return found


def shipped_lora_dir() -> Path:
    """The LoRAs that ship in the package (trained on the embedded model: ``steady.tiny.teach``)."""
    return package_dir() / "tiny" / "loras"


def shipped_lora(name: str) -> Path | None:
    """The shipped LoRA file called ``name`` (exactly, then ignoring case), or None."""
    files = [p for p in sorted(shipped_lora_dir().glob("*.safetensors")) if p.is_file()]
    for same in (lambda a, b: a == b, lambda a, b: a.lower() == b.lower()):
        found = [p for p in files if same(p.stem, name)]
        if found:
            return found[0]
    return None


def list_loras(settings: Settings, errors: list[tuple[Path, str]] | None = None) -> list[LoraInfo]:
    """Every LoRA file under the LoRA folders, described; files that cannot be read are left out
    (pass ``errors`` to receive (path, reason) for each)."""
    out = []
    for p, root in _roots(settings).items():
        try:
            out.append(inspect_lora(p, root))
        except BadInput as exc:
            if errors is not None:
                errors.append((p, exc.why))
    return out


def find_lora(name: str, settings: Settings, argument: str = "prompt", tag: str = "") -> LoraInfo:
    """The LoRA file ``<lora:NAME>`` means, or BadInput naming ``argument`` and the tag, with the
    closest names when there is none."""
    lora_dir = settings.lora_dir
    roots = _roots(settings)
    files = list(roots)
    value = tag or name

    def rel(p: Path) -> str:
        return p.relative_to(roots[p]).with_suffix("").as_posix()

    for same in (lambda a, b: a == b, lambda a, b: a.lower() == b.lower()):
        found = [p for p in files if same(rel(p), name)] or [p for p in files if same(p.stem, name)]
        if len(found) > 1:
            raise BadInput(argument, value, f"{len(found)} LoRA files are named {name!r}: "
                                            + ", ".join(rel(p) for p in found) + "; write the one you mean")  # fmt: skip
        if found:
            return inspect_lora(found[0], roots[found[0]], argument)
    described = [info for p in files if (info := _try_inspect(p, roots[p]))]
    aliased = [info for info in described if info.alias and info.alias.lower() == name.lower()]
    if len(aliased) == 1:
        return aliased[0]
    shipped = shipped_lora(name)
    if shipped is not None:
        return inspect_lora(shipped, None, argument)
    if not files:
        raise BadInput(argument, value, f"no LoRA named {name!r}: {lora_dir} has no LoRA files (.safetensors; set "
                                        "lora_dir in config.toml to use another folder, an A1111 models/Lora say)")  # fmt: skip
    names = sorted({p.stem for p in files} | {rel(p) for p in files} | {i.alias for i in described if i.alias})
    closest = difflib.get_close_matches(name, names, n=_CLOSEST, cutoff=0.4) or difflib.get_close_matches(
        name.lower(), [n.lower() for n in names], n=_CLOSEST, cutoff=0.4)  # fmt: skip
    hint = ("closest: " + ", ".join(closest)) if closest else f"{len(files)} LoRA files there, none close"
    raise BadInput(argument, value, f"no LoRA named {name!r} in {lora_dir}; {hint}")


def _try_inspect(p: Path, lora_dir: Path) -> LoraInfo | None:
    try:
        return inspect_lora(p, lora_dir)
    except BadInput:
        return None


# ---------------------------------------------------------------------------------------------
# hash and fit
# ---------------------------------------------------------------------------------------------
def lora_hash(info: LoraInfo, settings: Settings, argument: str = "lora") -> str:
    """A1111's short LoRA hash (12 hex digits), as its "Lora hashes" writes it: kohya's recorded
    hash of the tensor data (sshs_model_hash) when the file has one, else that hash computed (a
    .safetensors file), else the sha256 of the whole file (a pickle)."""
    if info.metadata_hash:
        return info.metadata_hash[:12]
    if info.format == "safetensors":
        return tensor_data_sha256(info.path, settings, argument)[:12]
    return sha256(info.path, settings)[:12]


def model_context_dim(model: ModelInfo) -> int | None:
    """The cross-attention context width of a model: its UNet config's (a diffusers folder), the
    width read from its tensors (a single file), or its family's."""
    if model.format == "diffusers":
        try:
            config = json.loads((model.path / "unet" / "config.json").read_text(encoding="utf-8"))
            value = config.get("cross_attention_dim")
        except (OSError, ValueError, AttributeError):
            value = None
    else:
        value = model.overrides.get("unet", {}).get("cross_attention_dim")
    if isinstance(value, int):
        return value
    return CONTEXT_DIM.get(model.arch)


def unfit_reason(info: LoraInfo, model: ModelInfo) -> str:
    """Why ``info`` cannot be applied to ``model`` (a warning: the LoRA is skipped), or ""."""
    if not info.layout:
        return "is not a LoRA of a Stable Diffusion 1, 2 or XL model (no lora_unet_/lora_te or unet./text_encoder. weights)"
    if info.kind not in SUPPORTED_KINDS:
        return f"is a {info.kind} network, which diffusers' LoRA loader cannot apply to Stable Diffusion"
    if info.arch and model.arch in ARCH_NAMES and info.arch != model.arch:
        return f"is an {ARCH_NAMES[info.arch]} LoRA and the model is {ARCH_NAMES[model.arch]}"
    model_dim = model_context_dim(model)
    if info.context_dim and model_dim and info.context_dim != model_dim:
        return f"was made for a {info.context_dim}-wide text context and the model's is {model_dim}"
    if "text_encoder_2" in info.parts and model.arch != "sdxl":
        return "has weights for a second text encoder, which only SDXL has"
    return ""


def pickle_refusal(info: LoraInfo, argument: str, tag: str) -> BadInput:
    return BadInput(argument, tag, f"{info.path} is a pickle ({info.path.suffix}), which can run code when loaded; "
                                   "convert it to .safetensors or pass --allow-pickle to load it with "
                                   "torch.load(weights_only=True)")  # fmt: skip
