"""What is this model file? Architecture, format and config values, read from tensor names and
shapes only (never the file name), without torch.

A safetensors file starts with an 8-byte little-endian header length and a JSON header that maps
every tensor name to its dtype, shape and byte range, so `steady models` can describe a 7 GB SDXL
checkpoint by reading a few hundred kilobytes.

Families, by the keys of the original (LDM / A1111) layout:
    sd1   cond_stage_model.transformer.text_model.*   OpenAI CLIP ViT-L, context 768
    sd2   cond_stage_model.model.*                    OpenCLIP ViT-H, context 1024
    sdxl  conditioner.embedders.0.transformer.* + conditioner.embedders.1.model.*, context 2048,
          model.diffusion_model.label_emb.* (size/crop conditioning)

`ModelInfo.overrides` holds the diffusers config values that the shapes determine, per component
("unet", "vae", "text_encoder", "text_encoder_2"). The loader starts from the shipped full-size
config of the family and applies them, so a real checkpoint and a tiny random test checkpoint in
the same layout load through the same code.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steady.errors import ModelError
from steady.models.pickled import pickle_shapes

ARCHS = ("sd1", "sd2", "sdxl")
SAFETENSORS_EXT = (".safetensors",)
PICKLE_EXT = (".ckpt", ".pt", ".pth", ".bin")
_MAX_HEADER = 256 * 1024 * 1024  # a real header is < 1 MB; anything huge is a corrupt length field

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_SD1 = "cond_stage_model.transformer.text_model."
OPENCLIP_SD2 = "cond_stage_model.model."
CLIP_XL = "conditioner.embedders.0.transformer.text_model."
OPENCLIP_XL = "conditioner.embedders.1.model."

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    format: str  # 'diffusers' | 'safetensors' | 'pickle'
    arch: str  # 'sd1' | 'sd2' | 'sdxl'
    prediction_type: str | None  # 'epsilon' | 'v_prediction'; None when the weights cannot tell
    native_size: int | None  # 512 / 768 / 1024 (the side the model was trained at)
    size_bytes: int
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    inpainting: bool = False  # a 9-channel UNet: latents + mask + masked image (an inpainting model)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


# ---------------------------------------------------------------------------------------------
# Attention heads cannot be read from weight shapes (q/k/v are one matrix whatever the split), so
# each family's own rule is applied:
#   SD1 UNet   (LDM num_heads=8):          8 heads at every level (head dim 40, 80, 160)
#   SD2/SDXL   (LDM num_head_channels=64): heads = channels // 64 (5, 10, 20)
#   CLIP text  (OpenAI and OpenCLIP):      heads = hidden // 64 (ViT-L 12, ViT-H 16, bigG 20)
# Tiny test models are narrower than 64 channels: the count is then raised to at least 1 and
# lowered until it divides the channels. Test fixtures use these same functions.
# ---------------------------------------------------------------------------------------------
def _fit_heads(heads: int, channels: int) -> int:
    heads = max(1, min(heads, channels))
    while channels % heads:
        heads -= 1
    return heads


def unet_heads(channels: int, arch: str) -> int:
    return _fit_heads(8 if arch == "sd1" else channels // 64, channels)


def text_heads(hidden: int) -> int:
    return _fit_heads(hidden // 64, hidden)


def norm_groups(channels: list[int]) -> int:
    """GroupNorm groups: 32 in every SD model; a divisor of all channels for odd tiny sizes."""
    return 32 if all(c % 32 == 0 for c in channels) else math.gcd(*channels)


NATIVE_SIZE = {"sd1": 512, "sd2": 512, "sd2v": 768, "sdxl": 1024}


def native_size(arch: str, prediction_type: str | None) -> int:
    """SD2 with unknown prediction type: 768, as the 2.x checkpoints people share are mostly the
    768-v ones; the loader corrects it once it has run the v-prediction check."""
    if arch == "sd2":
        return 512 if prediction_type == "epsilon" else 768
    return NATIVE_SIZE[arch]


# ---------------------------------------------------------------------------------------------
# safetensors header
# ---------------------------------------------------------------------------------------------
def pickle_refusal(info: ModelInfo) -> ModelError:
    """The error for a .ckpt/.pt pickle loaded without --allow-pickle."""
    return ModelError(
        "model",
        str(info.path),
        "is a pickle (.ckpt/.pt), which can run code when loaded; convert it to .safetensors "
        "or pass --allow-pickle to load it with torch.load(weights_only=True)",
    )


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file, checked against the file size (truncation)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ModelError("model", str(path), f"file is {size} bytes, too short to be a safetensors file")
            (n,) = struct.unpack("<Q", raw)
            if n > _MAX_HEADER or 8 + n > size:
                raise ModelError(
                    "model", str(path), "not a valid safetensors file (header length field is wrong: corrupt or truncated)"
                )
            text = f.read(n)
    except OSError as e:
        raise ModelError("model", str(path), f"cannot read file: {e.strerror or e}") from e
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError("model", str(path), "not a valid safetensors file (header is not JSON)") from e
    if not isinstance(header, dict):
        raise ModelError("model", str(path), "not a valid safetensors file (header is not a JSON object)")
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = t["data_offsets"]
            shape = t["shape"]
            if not (0 <= start <= stop) or not all(isinstance(s, int) and s >= 0 for s in shape):
                raise ValueError
        except (TypeError, KeyError, ValueError) as e:
            raise ModelError("model", str(path), f"not a valid safetensors file (bad entry for tensor {name!r})") from e
        end = max(end, stop)
    if 8 + n + end > size:
        raise ModelError(
            "model",
            str(path),
            f"file is truncated: tensors need {8 + n + end} bytes, the file has {size} (incomplete download?)",
        )
    return header


def shapes_of(header: dict[str, Any]) -> Shapes:
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


# ---------------------------------------------------------------------------------------------
# architecture
# ---------------------------------------------------------------------------------------------
def _has_prefix(shapes: Shapes, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in shapes)


@dataclass(frozen=True)
class WeightsFile:
    """What a LoRA, VAE or embedding file's inspection reads first: its tensors' shapes, its format
    ("safetensors" | "pickle"), its size in bytes and its safetensors metadata."""

    shapes: Shapes
    fmt: str
    size: int
    metadata: dict[str, Any]


def read_weights_file(p: Path, argument: str, read_pickle: Any = pickle_shapes) -> WeightsFile:
    """``p``'s shapes (a .safetensors header, or ``read_pickle`` for anything else), size and
    metadata; BadInput naming ``argument`` when it is missing or cannot be read."""
    from steady.errors import BadInput

    try:
        size = p.stat().st_size
    except OSError as exc:
        raise BadInput(argument, str(p), f"cannot read: {exc.strerror or exc}") from exc
    try:
        if p.suffix.lower() == ".safetensors":
            header = read_safetensors_header(p)
            meta = header.get("__metadata__")
            return WeightsFile(shapes_of(header), "safetensors", size, meta if isinstance(meta, dict) else {})
        return WeightsFile(read_pickle(p), "pickle", size, {})
    except ModelError as exc:
        raise BadInput(argument, str(p), exc.why) from exc


def _not_sd_reason(shapes: Shapes) -> str:
    keys = list(shapes)
    if not keys:
        return "it contains no tensors"
    if any(k.startswith(("lora_", "lora_unet_", "lora_te")) or ".lora_" in k for k in keys):
        return "it is a LoRA, not a Stable Diffusion checkpoint"
    if all(k.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv")) for k in keys):
        return "it is a standalone VAE, not a Stable Diffusion checkpoint"
    if any(k.startswith(("down_blocks.", "unet.down_blocks.", "mid_block.")) for k in keys):
        return "it is in diffusers key layout (a single component?), not an original-layout SD checkpoint"
    if "string_to_param" in keys or "emb_params" in keys or set(keys) <= {"clip_l", "clip_g"}:
        return "it is a textual-inversion embedding, not a Stable Diffusion checkpoint"
    return "it is not a Stable Diffusion checkpoint (no model.diffusion_model.* UNet weights)"


def detect_arch(shapes: Shapes, path: str) -> str:
    """sd1 / sd2 / sdxl from keys and shapes, or ModelError naming `model`."""
    if UNET + "input_blocks.0.0.weight" not in shapes:
        raise ModelError("model", path, _not_sd_reason(shapes))
    if not _has_prefix(shapes, VAE):
        raise ModelError("model", path, "checkpoint has no VAE weights (first_stage_model.*)")
    if _has_prefix(shapes, "conditioner.embedders.0.model."):
        raise ModelError("model", path, "this is an SDXL refiner checkpoint; only base models are supported")
    in_ch = shapes[UNET + "input_blocks.0.0.weight"][1]
    if in_ch not in (4, 9):  # 9: an inpainting model (latents, mask, masked image), read by steady.worker.img2img
        kind = "an inpainting" if in_ch == 9 else "an instruct-pix2pix" if in_ch == 8 else "a non-standard"
        raise ModelError(
            "model", path, f"UNet takes {in_ch} input channels ({kind} model); only text-to-image (4) and inpainting (9) "
                           "models are supported"
        )

    context = _cross_attention_dim(shapes)
    if CLIP_XL + "embeddings.token_embedding.weight" in shapes and OPENCLIP_XL + "token_embedding.weight" in shapes:
        arch, text_dim = "sdxl", (
            shapes[CLIP_XL + "embeddings.token_embedding.weight"][1] + shapes[OPENCLIP_XL + "token_embedding.weight"][1]
        )
        if UNET + "label_emb.0.0.weight" not in shapes:
            raise ModelError("model", path, "SDXL text encoders but no size conditioning (label_emb) in the UNet")
    elif OPENCLIP_SD2 + "token_embedding.weight" in shapes:
        arch, text_dim = "sd2", shapes[OPENCLIP_SD2 + "token_embedding.weight"][1]
    elif CLIP_SD1 + "embeddings.token_embedding.weight" in shapes:
        arch, text_dim = "sd1", shapes[CLIP_SD1 + "embeddings.token_embedding.weight"][1]
    else:
        raise ModelError("model", path, "checkpoint has a UNet but no text encoder this program knows (SD 1.x, 2.x or SDXL)")
    if context is not None and context != text_dim:
        raise ModelError(
            "model", path, f"UNet cross-attention width {context} does not match the text encoder ({text_dim}) for {arch}"
        )
    return arch


def _cross_attention_dim(shapes: Shapes) -> int | None:
    for k, s in shapes.items():
        if k.startswith(UNET) and k.endswith("attn2.to_k.weight"):
            return s[1]
    return None


# ---------------------------------------------------------------------------------------------
# config values from shapes
# ---------------------------------------------------------------------------------------------
def _indices(shapes: Shapes, prefix: str) -> list[int]:
    """Distinct integers N in keys '<prefix>N.…'."""
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in shapes if (m := pat.match(k))})


def _need(shapes: Shapes, key: str, path: str) -> tuple[int, ...]:
    try:
        return shapes[key]
    except KeyError:
        raise ModelError("model", path, f"checkpoint is incomplete: tensor {key} is missing") from None


def unet_overrides(shapes: Shapes, arch: str, path: str) -> dict[str, Any]:
    u = UNET
    conv_in = _need(shapes, u + "input_blocks.0.0.weight", path)
    inputs = _indices(shapes, u + "input_blocks.")
    downs = [i for i in inputs if u + f"input_blocks.{i}.0.op.weight" in shapes]
    layers = (downs[0] - 1) if downs else (max(inputs))
    n_blocks = len(downs) + 1
    if layers < 1 or len(inputs) != 1 + n_blocks * (layers + 1) - 1:
        raise ModelError("model", path, f"UNet input blocks do not form a regular layout ({len(inputs)} blocks)")
    channels, down_types, depths = [], [], []
    for b in range(n_blocks):
        first = 1 + b * (layers + 1)
        channels.append(_need(shapes, u + f"input_blocks.{first}.0.out_layers.3.weight", path)[0])
        tb = _indices(shapes, u + f"input_blocks.{first}.1.transformer_blocks.")
        down_types.append("CrossAttnDownBlock2D" if tb else "DownBlock2D")
        depths.append(len(tb) or 1)
    up_types = []
    for b in range(n_blocks):
        tb = _indices(shapes, u + f"output_blocks.{b * (layers + 1)}.1.transformer_blocks.")
        up_types.append("CrossAttnUpBlock2D" if tb else "UpBlock2D")
    mid_depth = len(_indices(shapes, u + "middle_block.1.transformer_blocks."))
    if mid_depth and mid_depth != depths[-1]:
        raise ModelError("model", path, f"UNet middle block depth {mid_depth} differs from the last down block's {depths[-1]}")
    proj_in = next((s for k, s in shapes.items() if k.startswith(u) and k.endswith(".proj_in.weight")), None)
    heads = [unet_heads(c, arch) for c in channels]
    o: dict[str, Any] = {
        "in_channels": conv_in[1],
        "out_channels": _need(shapes, u + "out.2.weight", path)[0],
        "block_out_channels": channels,
        "layers_per_block": layers,
        "down_block_types": down_types,
        "up_block_types": up_types,
        "transformer_layers_per_block": depths[0] if len(set(depths)) == 1 else depths,
        "attention_head_dim": heads[0] if arch == "sd1" and len(set(heads)) == 1 else heads,
        "norm_num_groups": norm_groups(channels),
    }
    context = _cross_attention_dim(shapes)
    if context is not None:
        o["cross_attention_dim"] = context
    if proj_in is not None:
        o["use_linear_projection"] = len(proj_in) == 2
    if arch == "sdxl":
        adm_in = _need(shapes, u + "label_emb.0.0.weight", path)[1]
        pooled = _need(shapes, OPENCLIP_XL + "text_projection", path)[1]
        if (adm_in - pooled) <= 0 or (adm_in - pooled) % 6:
            raise ModelError("model", path, f"SDXL size conditioning width {adm_in} does not fit pooled text width {pooled}")
        o["projection_class_embeddings_input_dim"] = adm_in
        o["addition_time_embed_dim"] = (adm_in - pooled) // 6
    return o


def vae_overrides(shapes: Shapes, path: str) -> dict[str, Any]:
    v = VAE
    downs = _indices(shapes, v + "encoder.down.")
    if not downs:
        raise ModelError("model", path, "VAE encoder blocks (first_stage_model.encoder.down.*) are missing")
    channels = [_need(shapes, v + f"encoder.down.{i}.block.0.conv2.weight", path)[0] for i in downs]
    return {
        "in_channels": _need(shapes, v + "encoder.conv_in.weight", path)[1],
        "out_channels": _need(shapes, v + "decoder.conv_out.weight", path)[0],
        "latent_channels": _need(shapes, v + "decoder.conv_in.weight", path)[1],
        "block_out_channels": channels,
        "layers_per_block": len(_indices(shapes, v + "encoder.down.0.block.")),
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "mid_block_add_attention": v + "encoder.mid.attn_1.q.weight" in shapes,
        "norm_num_groups": norm_groups(channels),
    }


def clip_overrides(shapes: Shapes, prefix: str, path: str) -> dict[str, Any]:
    """OpenAI CLIP layout (transformers key names under `prefix`, e.g. '…transformer.text_model.')."""
    vocab, hidden = _need(shapes, prefix + "embeddings.token_embedding.weight", path)
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "max_position_embeddings": _need(shapes, prefix + "embeddings.position_embedding.weight", path)[0],
        "num_hidden_layers": len(_indices(shapes, prefix + "encoder.layers.")),
        "intermediate_size": _need(shapes, prefix + "encoder.layers.0.mlp.fc1.weight", path)[0],
        "num_attention_heads": text_heads(hidden),
    }


def openclip_overrides(shapes: Shapes, prefix: str, path: str, *, drop_last: bool) -> dict[str, Any]:
    """OpenCLIP layout. SD 2.x conditions on the penultimate layer, so diffusers builds its text
    encoder with one layer fewer than the checkpoint holds (drop_last); SDXL's encoder keeps all
    layers (the pipeline itself takes hidden_states[-2]) and has a text projection."""
    vocab, hidden = _need(shapes, prefix + "token_embedding.weight", path)
    blocks = len(_indices(shapes, prefix + "transformer.resblocks."))
    o = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "max_position_embeddings": _need(shapes, prefix + "positional_embedding", path)[0],
        "num_hidden_layers": blocks - 1 if drop_last else blocks,
        "intermediate_size": _need(shapes, prefix + "transformer.resblocks.0.mlp.c_fc.weight", path)[0],
        "num_attention_heads": text_heads(hidden),
    }
    if not drop_last:
        o["projection_dim"] = _need(shapes, prefix + "text_projection", path)[1]
    if o["num_hidden_layers"] < 1:
        raise ModelError("model", path, f"text encoder has {blocks} transformer blocks")
    return o


def derive_overrides(shapes: Shapes, arch: str, path: str) -> dict[str, dict[str, Any]]:
    o = {"unet": unet_overrides(shapes, arch, path), "vae": vae_overrides(shapes, path)}
    if arch == "sd1":
        o["text_encoder"] = clip_overrides(shapes, CLIP_SD1, path)
    elif arch == "sd2":
        o["text_encoder"] = openclip_overrides(shapes, OPENCLIP_SD2, path, drop_last=True)
    else:
        o["text_encoder"] = clip_overrides(shapes, CLIP_XL, path)
        o["text_encoder_2"] = openclip_overrides(shapes, OPENCLIP_XL, path, drop_last=False)
    return o


def prediction_from_keys(shapes: Shapes, arch: str) -> str | None:
    """v-prediction finetunes of SD1/SDXL usually carry an empty 'v_pred' marker tensor (the
    convention A1111/ComfyUI read). SD2 768-v and 512-base differ in no key: None (unknown)."""
    if "v_pred" in shapes:
        return "v_prediction"
    return None if arch == "sd2" else "epsilon"


def info_from_shapes(path: Path, fmt: str, shapes: Shapes, size_bytes: int) -> ModelInfo:
    """ModelInfo for a state dict's {name: shape}: a safetensors header's, or a pickle's as
    steady.models.pickled reads it (without torch and without loading it)."""
    arch = detect_arch(shapes, str(path))
    pred = prediction_from_keys(shapes, arch)
    return ModelInfo(
        path=path,
        name=_name(path),
        format=fmt,
        arch=arch,
        prediction_type=pred,
        native_size=native_size(arch, pred),
        size_bytes=size_bytes,
        overrides=derive_overrides(shapes, arch, str(path)),
        inpainting=shapes[UNET + "input_blocks.0.0.weight"][1] == 9,
    )


def _name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


# ---------------------------------------------------------------------------------------------
# diffusers folders
# ---------------------------------------------------------------------------------------------
def _read_json(path: Path, model: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError("model", str(model), f"diffusers folder has no {path.relative_to(model)}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError("model", str(model), f"cannot read {path.relative_to(model)}: {e}") from e


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


FOLDER_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "StableDiffusionInpaintPipeline",
                    "StableDiffusionXLInpaintPipeline")  # fmt: skip


def inspect_folder(path: Path) -> ModelInfo:
    index = _read_json(path / "model_index.json", path)
    cls = index.get("_class_name")
    if cls not in FOLDER_PIPELINES:
        raise ModelError(
            "model", str(path), f"pipeline {cls!r} is not supported (need one of {', '.join(FOLDER_PIPELINES)})"
        )
    unet = _read_json(path / "unet" / "config.json", path)
    vae = _read_json(path / "vae" / "config.json", path)
    sched_file = path / "scheduler" / "scheduler_config.json"
    sched = _read_json(sched_file, path) if sched_file.exists() else {}
    if unet.get("in_channels", 4) not in (4, 9):
        raise ModelError(
            "model", str(path), f"UNet takes {unet.get('in_channels')} input channels; only text-to-image (4) and "
                                "inpainting (9) models are supported"
        )
    if cls.startswith("StableDiffusionXL"):
        arch = "sdxl"
    else:
        # SD2's OpenCLIP text encoder uses gelu, SD1's OpenAI CLIP quick_gelu; the 1024-wide
        # context is the fallback when the text encoder config is unreadable.
        te_file = path / "text_encoder" / "config.json"
        act = _read_json(te_file, path).get("hidden_act") if te_file.is_file() else None
        if act is None:
            arch = "sd2" if unet.get("cross_attention_dim") == 1024 else "sd1"
        else:
            arch = "sd2" if act == "gelu" else "sd1"
    pred = sched.get("prediction_type", "epsilon")
    scale = 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    sample = unet.get("sample_size")
    return ModelInfo(
        path=path,
        name=path.name,
        format="diffusers",
        arch=arch,
        prediction_type=pred,
        native_size=sample * scale if isinstance(sample, int) else native_size(arch, pred),
        size_bytes=folder_size(path),
        overrides={},
        inpainting=unet.get("in_channels", 4) == 9,
    )


# ---------------------------------------------------------------------------------------------
# clip skip
# ---------------------------------------------------------------------------------------------
def text_layers(info: ModelInfo) -> int | None:
    """The fewest transformer layers among the model's text encoders (as diffusers builds them),
    from the checkpoint's shapes or the folder's configs; None when no config says."""
    counts = []
    for component in ("text_encoder", "text_encoder_2"):
        if info.format == "diffusers":
            config = Path(info.path) / component / "config.json"
            try:
                n = json.loads(config.read_text(encoding="utf-8")).get("num_hidden_layers") if config.is_file() else None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                n = None
        else:
            n = info.overrides.get(component, {}).get("num_hidden_layers")
        if isinstance(n, int) and n > 0:
            counts.append(n)
    return min(counts) if counts else None


def clip_skip_limit(info: ModelInfo) -> int | None:
    """The largest A1111 clip skip the model can take, so that the layer read is a transformer
    layer: N for an encoder of N layers (clip skip 1 reads the last, N the first); SDXL conditions
    on the penultimate layer at clip skip 1, so N - 1. None: unknown."""
    layers = text_layers(info)
    if layers is None:
        return None
    return max(1, layers - 1) if info.arch == "sdxl" else layers


# ---------------------------------------------------------------------------------------------
def inspect_model(path: str | Path) -> ModelInfo:
    """Describe a checkpoint file or diffusers folder. ModelError (argument `model`) if it is
    missing, unreadable, corrupt or not a Stable Diffusion model."""
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            return inspect_folder(p.resolve())
        if not p.exists():
            raise ModelError("model", str(path), "no such file or folder")
        if not p.is_file():  # reading a FIFO would wait for a writer
            raise ModelError("model", str(path), "is not a regular file (a FIFO, socket or device)")
        p = p.resolve()
        size = p.stat().st_size
    except OSError as e:
        raise ModelError("model", str(path), f"cannot read: {e.strerror or e}") from e
    ext = p.suffix.lower()
    if ext in SAFETENSORS_EXT:
        return info_from_shapes(p, "safetensors", shapes_of(read_safetensors_header(p)), size)
    if ext in PICKLE_EXT:
        if size < 64:
            raise ModelError("model", str(path), f"file is {size} bytes, too small to be a checkpoint")
        return info_from_shapes(p, "pickle", pickle_shapes(p), size)
    raise ModelError(
        "model", str(path), f"unsupported file type {ext or '(none)'}; expected .safetensors, .ckpt or a diffusers folder"
    )
