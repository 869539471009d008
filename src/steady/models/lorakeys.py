"""What a LoRA file's tensor names and shapes say it is, where nothing else does: the layer set of
a consistency-distilled LoRA (LCM-LoRA). Torch-free (the safetensors header only).

LCM-LoRA is trained by latent-consistency distillation with one fixed list of UNet layers (the
distillation script's ``lora_target_modules``): in every transformer block ``to_q``, ``to_k``,
``to_v``, ``to_out.0``, ``proj_in``, ``proj_out``, ``ff.net.0.proj``, ``ff.net.2``; in every resnet
``conv1``, ``conv2``, ``conv_shortcut`` and the time-embedding projection ``time_emb_proj``; and
the down- and upsamplers' convolutions, all at one rank (64 in the published SD 1.5 file), with no
text-encoder layers. A style or character LoRA does not look like that: kohya's default LoRA
adapts the transformer blocks only (no resnet, no time embedding, no resampler) and usually the
text encoder too; a LoCon that adds the convolutions usually gives them a lower rank than the
linear layers, and carries kohya's ``ss_*`` training metadata.

So the rule (``consistency_layout``) is: a file with no training metadata whose layers are
UNet-only, cover every one of the kinds above (``conv_shortcut`` where the model has one), with
``time_emb_proj`` in every resnet that has a ``conv1``, and share one rank. What the tensors cannot
tell apart: TCD-LoRA and Hyper-SD's SD 1.5 LoRAs are trained on the same layer set (they match and
get LCM's settings, which they sample acceptably with), and a UNet-only LoCon at one rank without
metadata would match as well. A name or metadata saying what the file is always comes first
(steady.models.defaults).
"""

from __future__ import annotations

import re
from typing import Any

# The kinds of layer, as the end of a module name with dots as underscores (kohya's spelling).
ATTENTION = ("to_q", "to_k", "to_v", "to_out_0", "proj_in", "proj_out", "ff_net_0_proj", "ff_net_2")
RESNET = ("conv1", "conv2", "time_emb_proj")
RESAMPLERS = ("downsamplers_0_conv", "upsamplers_0_conv")
REQUIRED = ATTENTION + RESNET + RESAMPLERS
OPTIONAL = ("conv_shortcut",)
# A kohya file's down weight and a diffusers/peft file's A weight: (rank, in[, kh, kw]).
_DOWN = re.compile(r"^(?:lora_unet_|unet\.)(.+?)(?:\.lora_down\.weight|\.lora\.down\.weight|\.lora_A(?:\.default)?\.weight)$")
_TEXT = re.compile(r"^(?:lora_te\d?_|text_encoder(?:_2)?\.|te\d?\.)")
TRAINING_METADATA = re.compile(r"^(?:ss_|modelspec\.)")


def _kind(module: str) -> str:
    name = module.replace(".", "_")
    return next((k for k in REQUIRED + OPTIONAL if name.endswith("_" + k) or name == k), "")


def consistency_layout(header: dict[str, Any]) -> bool:
    """True when a safetensors header's LoRA tensors have LCM-LoRA's layer set (module docstring)."""
    metadata = header.get("__metadata__")
    if isinstance(metadata, dict) and any(TRAINING_METADATA.match(str(k)) for k in metadata):
        return False
    ranks: set[int] = set()
    by_kind: dict[str, set[str]] = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if _TEXT.match(key):
            return False  # text-encoder layers: not the distillation's UNet-only set
        found = _DOWN.match(key)
        if found is None:
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not shape:
            return False
        ranks.add(int(shape[0]))
        module = found.group(1).replace(".", "_")
        by_kind.setdefault(_kind(module), set()).add(module)
    if len(ranks) != 1 or "" in by_kind or any(k not in by_kind for k in REQUIRED):
        return False
    resnets = {m[: -len("_conv1")] for m in by_kind["conv1"]}
    with_time = {m[: -len("_time_emb_proj")] for m in by_kind["time_emb_proj"]}
    return resnets == with_time
