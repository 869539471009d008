"""Write a diffusers pipeline as ONE .safetensors file in the original Stable Diffusion key layout.

This is the inverse of the import conversion in diffusers.loaders.single_file_utils (which
steady.worker.loader uses), modelled on diffusers' repo scripts
convert_diffusers_to_original_stable_diffusion.py and convert_diffusers_to_original_sdxl.py.
Unlike those scripts, the block numbering is computed from the model's config, so any number of
levels and layers per level works (the tiny test models as well as the real ones).

    UNet          model.diffusion_model.*           (input_blocks / middle_block / output_blocks)
    VAE           first_stage_model.*               (encoder.down.N.block.M / decoder.up.N ...)
    sd1 text      cond_stage_model.transformer.text_model.*           (OpenAI CLIP, unchanged)
    sd2 text      cond_stage_model.model.transformer.resblocks.N.*    (OpenCLIP, fused in_proj)
    sdxl text     conditioner.embedders.0.transformer.text_model.* and
                  conditioner.embedders.1.model.*  (OpenCLIP, with text_projection)

SD 2.x: diffusers keeps 23 of OpenCLIP ViT-H's 24 blocks because SD 2 conditions on the
penultimate layer. The original layout has the last block, so one is written with all-zero
weights: a zero block is an identity on the residual stream and is never run by SD 2 anyway.

Run: python -m steady.worker.export DIFFUSERS_FOLDER OUT.safetensors [--half]
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

import torch

from steady.errors import ModelError

_UNET_TOP = {  # diffusers -> original
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = [  # inside a resnet, diffusers -> original (update_unet_resnet_ldm_to_diffusers, reversed)
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]
_VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
_VAE_TOP = {
    "quant_conv.": "quant_conv.",
    "post_quant_conv.": "post_quant_conv.",
    "encoder.conv_in.": "encoder.conv_in.",
    "encoder.conv_out.": "encoder.conv_out.",
    "encoder.conv_norm_out.": "encoder.norm_out.",
    "decoder.conv_in.": "decoder.conv_in.",
    "decoder.conv_out.": "decoder.conv_out.",
    "decoder.conv_norm_out.": "decoder.norm_out.",
}
_OPENCLIP_LAYER = [
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
    ("self_attn.out_proj.", "attn.out_proj."),
]


def _rename(sd: dict[str, torch.Tensor], prefixes: list[tuple[str, str]], what: str, inner=None) -> dict[str, torch.Tensor]:
    """Map every key by its longest matching diffusers prefix; `inner(rest, diffusers_prefix)`
    renames the part after it. Every key must map (a new layout should fail loudly)."""
    prefixes = sorted(prefixes, key=lambda p: -len(p[0]))
    out = {}
    for k, v in sd.items():
        for hf, ldm in prefixes:
            if k.startswith(hf):
                rest = k[len(hf):]
                out[ldm + (inner(rest, hf) if inner else rest)] = v
                break
        else:
            raise ModelError("model", what, f"cannot export weight {k!r}: no original-layout name for it")
    return out


def _resnet_inner(rest: str, hf_prefix: str) -> str:
    if ".resnets." in hf_prefix:
        for hf, ldm in _UNET_RESNET:
            if rest.startswith(hf):
                return ldm + rest[len(hf):]
    return rest


def unet_to_original(sd: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    n = len(config.block_out_channels)
    L = config.layers_per_block
    if not isinstance(L, int):
        raise ModelError("model", "unet", "per-block layers_per_block cannot be written in the original layout")
    down_attn = [t.startswith("CrossAttn") for t in config.down_block_types]
    up_attn = [t.startswith("CrossAttn") for t in config.up_block_types]
    pre: list[tuple[str, str]] = list(_UNET_TOP.items())
    for b in range(n):
        for j in range(L):
            i = 1 + b * (L + 1) + j
            pre.append((f"down_blocks.{b}.resnets.{j}.", f"input_blocks.{i}.0."))
            if down_attn[b]:
                pre.append((f"down_blocks.{b}.attentions.{j}.", f"input_blocks.{i}.1."))
        if b < n - 1:
            pre.append((f"down_blocks.{b}.downsamplers.0.conv.", f"input_blocks.{(b + 1) * (L + 1)}.0.op."))
        for j in range(L + 1):
            i = b * (L + 1) + j
            pre.append((f"up_blocks.{b}.resnets.{j}.", f"output_blocks.{i}.0."))
            if up_attn[b]:
                pre.append((f"up_blocks.{b}.attentions.{j}.", f"output_blocks.{i}.1."))
        if b < n - 1:
            pre.append((f"up_blocks.{b}.upsamplers.0.", f"output_blocks.{b * (L + 1) + L}.{2 if up_attn[b] else 1}."))
    pre += [("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
            ("mid_block.resnets.1.", "middle_block.2.")]
    return _rename(sd, pre, "unet", _resnet_inner)


def vae_to_original(sd: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    n = len(config.block_out_channels)
    L = config.layers_per_block
    pre: list[tuple[str, str]] = list(_VAE_TOP.items())
    for i in range(n):
        for j in range(L):
            pre.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}."))
        if i < n - 1:
            pre.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        up = n - 1 - i  # the original numbers decoder levels from the lowest resolution up
        for j in range(L + 1):
            pre.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{up}.block.{j}."))
        if i < n - 1:
            pre.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{up}.upsample."))
    for e in ("encoder", "decoder"):
        pre += [(f"{e}.mid_block.resnets.0.", f"{e}.mid.block_1."), (f"{e}.mid_block.resnets.1.", f"{e}.mid.block_2."),
                (f"{e}.mid_block.attentions.0.", f"{e}.mid.attn_1.")]

    def inner(rest: str, hf: str) -> str:
        if ".resnets." in hf and rest.startswith("conv_shortcut."):
            return "nin_shortcut." + rest[len("conv_shortcut."):]
        if ".attentions." in hf:
            for a, b in _VAE_ATTN:
                if rest.startswith(a):
                    return b + rest[len(a):]
        return rest

    out = _rename(sd, pre, "vae", inner)
    for k, v in out.items():  # the original attention uses 1x1 convolutions, diffusers linears
        if ".mid.attn_1." in k and k.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")) and v.ndim == 2:
            out[k] = v.reshape(*v.shape, 1, 1)
    return out


def _text_model_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers >= 5.6 flattened CLIPTextModel (no 'text_model.' level); restore it."""
    out = {}
    for k, v in sd.items():
        if k.endswith("position_ids"):
            continue
        if k.startswith(("text_model.", "text_projection.")):
            out[k] = v
        else:
            out["text_model." + k] = v
    return out


def clip_to_original(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI CLIP: the original checkpoints keep transformers' names under text_model."""
    return {k: v for k, v in _text_model_keys(sd).items() if not k.startswith("text_projection.")}


def openclip_to_original(sd: dict[str, torch.Tensor], *, extra_zero_block: bool) -> dict[str, torch.Tensor]:
    sd = _text_model_keys(sd)
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    top = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    layer_pre = "text_model.encoder.layers."
    n_layers = 0
    for k, v in sd.items():
        if k in top:
            out[top[k]] = v
        elif k == "text_projection.weight":
            out["text_projection"] = v.t().contiguous()  # Linear(hidden, proj) -> x @ [hidden, proj]
        elif k.startswith(layer_pre):
            idx, rest = k[len(layer_pre):].split(".", 1)
            n_layers = max(n_layers, int(idx) + 1)
            blk = f"transformer.resblocks.{idx}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                _, proj, kind = rest.split(".")
                qkv.setdefault(idx, {}).setdefault(kind, {})[proj[0]] = v
                continue
            for hf, ldm in _OPENCLIP_LAYER:
                if rest.startswith(hf):
                    out[blk + ldm + rest[len(hf):]] = v
                    break
            else:
                raise ModelError("model", "text_encoder", f"cannot export weight {k!r}")
        else:
            raise ModelError("model", "text_encoder", f"cannot export weight {k!r}")
    for idx, kinds in qkv.items():
        for kind, parts in kinds.items():
            if set(parts) != {"q", "k", "v"}:
                raise ModelError("model", "text_encoder", f"layer {idx} lacks one of q/k/v {kind}")
            out[f"transformer.resblocks.{idx}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if extra_zero_block:
        last = f"transformer.resblocks.{n_layers - 1}."
        new = f"transformer.resblocks.{n_layers}."
        for k in [k for k in out if k.startswith(last)]:
            out[new + k[len(last):]] = torch.zeros_like(out[k])
    return out


def pipeline_to_original(pipe: Any, arch: str) -> dict[str, torch.Tensor]:
    """The whole pipeline's weights under original-layout names (tensors shared, not copied)."""
    if arch not in ("sd1", "sd2", "sdxl"):
        raise ModelError("arch", arch, "expected sd1, sd2 or sdxl")
    sd: dict[str, torch.Tensor] = {}
    for k, v in unet_to_original(pipe.unet.state_dict(), pipe.unet.config).items():
        sd["model.diffusion_model." + k] = v
    for k, v in vae_to_original(pipe.vae.state_dict(), pipe.vae.config).items():
        sd["first_stage_model." + k] = v
    if arch == "sd1":
        for k, v in clip_to_original(pipe.text_encoder.state_dict()).items():
            sd["cond_stage_model.transformer." + k] = v
    elif arch == "sd2":
        for k, v in openclip_to_original(pipe.text_encoder.state_dict(), extra_zero_block=True).items():
            sd["cond_stage_model.model." + k] = v
    else:
        for k, v in clip_to_original(pipe.text_encoder.state_dict()).items():
            sd["conditioner.embedders.0.transformer." + k] = v
        for k, v in openclip_to_original(pipe.text_encoder_2.state_dict(), extra_zero_block=False).items():
            sd["conditioner.embedders.1.model." + k] = v
    return sd


_ST_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def write_safetensors(tensors: dict[str, torch.Tensor], f, dtype: torch.dtype | None = None,
                      metadata: dict[str, str] | None = None) -> None:
    """Stream `tensors` to the open binary file `f` in the safetensors format, casting floating
    tensors to `dtype` one at a time: memory stays at one tensor, where safetensors.save_file
    first copies everything into bytes (2 GB more for an SD 1.5 file)."""
    header: dict[str, Any] = {}
    plan = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        out = dtype if dtype is not None and t.is_floating_point() else t.dtype
        if out not in _ST_DTYPES:
            raise ModelError("model", name, f"cannot write tensors of type {out}")
        n = t.numel() * t.new_empty((), dtype=out).element_size()
        header[name] = {"dtype": _ST_DTYPES[out], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        plan.append((name, out))
        offset += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for name, out in plan:
        t = tensors[name].detach().to("cpu", out).contiguous().reshape(-1)
        if t.numel():
            f.write(memoryview(t.view(torch.uint8).numpy()))


def save_single_file(pipe: Any, path: str | os.PathLike, arch: str, dtype: torch.dtype | None = None) -> Path:
    """Write `pipe` (a diffusers SD/SDXL pipeline) to `path` in the original layout, optionally
    cast to `dtype`. Atomic: a temp file in the same folder, fsync, rename."""
    path = Path(path)
    sd = pipeline_to_original(pipe, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    # not tempfile.mkstemp: its 0600 mode would stick to the model file; open() honours umask
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            write_safetensors(sd, f, dtype, metadata={"format": "pt"})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # some platforms cannot fsync a directory
            pass
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def main() -> None:
    import argparse

    from diffusers import DiffusionPipeline

    from steady.models.detect import inspect_model

    ap = argparse.ArgumentParser(description="diffusers folder -> original-layout .safetensors")
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--half", action="store_true", help="write float16 weights")
    a = ap.parse_args()
    info = inspect_model(a.folder)
    pipe = DiffusionPipeline.from_pretrained(a.folder, local_files_only=True)
    save_single_file(pipe, a.out, info.arch, torch.float16 if a.half else None)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
