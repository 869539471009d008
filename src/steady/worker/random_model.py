"""Tiny random-weight Stable Diffusion models, built like diffusers' own tests (get_dummy_components).

Used for two things: the default model until the trained embedded model ships
(steady.models.default), and the test suite (tests/fixtures/tiny_models.py).

    make_tiny_components(arch, seed=0, cache_dir) -> {"unet": ..., "vae": ..., "text_encoder": ..., ...}
    assemble(arch, components)                    -> a StableDiffusion(XL)Pipeline
    save_random_folder(dest, arch="sd1", seed=0)  -> dest, a diffusers folder (written atomically)
    save_random_full_size(path, seed=0)           -> path, a full-size SD 1.5 single file (random, fp16)

The full-size file (860M-parameter UNet, ~2 GiB) is for tests and benchmarks of real-size
memory and speed; build it with `python -m steady.worker.random_model full OUT.safetensors`.

arch: "sd1", "sd2" (epsilon), "sd2v" (the same tiny SD2 with the v_prediction scheduler), "sdxl".

Each component is the shipped full-size config of its family (steady/models/configs) with the
shape fields made tiny (TINY below), so a tiny single file loads through exactly the same code
as a real checkpoint. Head counts follow steady.models.detect's rules (they cannot be read from
weights). The text encoders are narrow (hidden 32) but keep the real 49408-token vocabulary,
because the real tokenizer is used. Every parameter gets a little extra noise so that no two
tensors are equal: a swapped key would show in outputs. Images from these models are noise.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from steady.models import shipped
from steady.models.detect import norm_groups, text_heads, unet_heads

ARCHS = ("sd1", "sd2", "sd2v", "sdxl")


def arch_family(arch: str) -> str:
    """The detect/export architecture of a fixture arch ('sd2v' is an sd2 model)."""
    return "sd2" if arch == "sd2v" else arch


def _text(hidden: int = 32, layers: int = 2, **extra: Any) -> dict[str, Any]:
    return {"vocab_size": 49408, "hidden_size": hidden, "max_position_embeddings": 77, "num_hidden_layers": layers,
            "intermediate_size": 64, "num_attention_heads": text_heads(hidden), **extra}


def _vae() -> dict[str, Any]:
    ch = [32, 64]
    return {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": ch, "layers_per_block": 1,
            "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
            "mid_block_add_attention": True, "norm_num_groups": norm_groups(ch)}


def _unet(arch: str, *, layers: int, down: list[str], up: list[str], cross: int, depth: Any, **extra: Any) -> dict[str, Any]:
    ch = [32, 64]
    heads = [unet_heads(c, arch) for c in ch]
    return {"in_channels": 4, "out_channels": 4, "block_out_channels": ch, "layers_per_block": layers,
            "down_block_types": down, "up_block_types": up, "transformer_layers_per_block": depth,
            "attention_head_dim": heads[0] if arch == "sd1" else heads, "norm_num_groups": norm_groups(ch),
            "cross_attention_dim": cross, **extra}


# The values detect.derive_overrides must find again in the saved single file.
TINY: dict[str, dict[str, dict[str, Any]]] = {
    "sd1": {
        # SD1's real order: attention on the high-resolution levels, none at the lowest.
        "unet": _unet("sd1", layers=2, down=["CrossAttnDownBlock2D", "DownBlock2D"], up=["UpBlock2D", "CrossAttnUpBlock2D"],
                      cross=32, depth=1, use_linear_projection=False),
        "vae": _vae(),
        "text_encoder": _text(),
    },
    "sd2": {
        "unet": _unet("sd2", layers=1, down=["CrossAttnDownBlock2D", "DownBlock2D"], up=["UpBlock2D", "CrossAttnUpBlock2D"],
                      cross=32, depth=1, use_linear_projection=True),
        "vae": _vae(),
        "text_encoder": _text(),
    },
    "sdxl": {
        # SDXL's real order: no attention on the highest-resolution level; depths differ per level.
        "unet": _unet("sdxl", layers=2, down=["DownBlock2D", "CrossAttnDownBlock2D"], up=["CrossAttnUpBlock2D", "UpBlock2D"],
                      cross=64, depth=[1, 2], use_linear_projection=True,
                      addition_time_embed_dim=8, projection_class_embeddings_input_dim=16 + 6 * 8),
        "vae": _vae(),
        "text_encoder": _text(),
        "text_encoder_2": _text(projection_dim=16),
    },
}
TINY["sd2v"] = TINY["sd2"]
_EXTRA = {"unet": {"sample_size": 32}, "vae": {"sample_size": 64}}  # folder-only defaults (not in weights)


def _overrides(arch: str) -> dict[str, dict[str, Any]]:
    o = copy.deepcopy(TINY[arch])
    for comp, values in _EXTRA.items():
        o[comp].update(values)
    return o


def make_tiny_components(arch: str, seed: int = 0, cache_dir: Path | None = None) -> dict[str, Any]:
    """Fresh tiny components (CPU, float32), deterministic for (arch, seed)."""
    import diffusers
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, not {arch!r}")
    # The config folder is only read while building; callers that build often pass a cache.
    cfg_dir = shipped.materialize(arch, _overrides(arch), cache_dir or Path(tempfile.mkdtemp(prefix="steady-cfg-")))

    def cfg(component: str) -> dict[str, Any]:
        name = "scheduler_config.json" if component == "scheduler" else "config.json"
        return json.loads((cfg_dir / component / name).read_text(encoding="utf-8"))

    torch.manual_seed(seed)
    comps: dict[str, Any] = {
        "unet": UNet2DConditionModel.from_config(cfg("unet")),
        "vae": AutoencoderKL.from_config(cfg("vae")),
        "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(cfg_dir / "text_encoder", local_files_only=True)),
        "tokenizer": CLIPTokenizer.from_pretrained(cfg_dir / "tokenizer", local_files_only=True),
    }
    if arch == "sdxl":
        comps["text_encoder_2"] = CLIPTextModelWithProjection(
            CLIPTextConfig.from_pretrained(cfg_dir / "text_encoder_2", local_files_only=True)
        )
        comps["tokenizer_2"] = CLIPTokenizer.from_pretrained(cfg_dir / "tokenizer_2", local_files_only=True)
    sched = cfg("scheduler")
    comps["scheduler"] = getattr(diffusers, sched["_class_name"]).from_config(sched)

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in comps.values():
            if isinstance(module, torch.nn.Module):
                module.eval()
                for p in module.parameters():
                    p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return comps


def pipeline_class(arch: str):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline


def assemble(arch: str, comps: dict[str, Any]):
    if arch == "sdxl":
        return pipeline_class(arch)(**comps, force_zeros_for_empty_prompt=True, add_watermarker=False)
    return pipeline_class(arch)(**comps, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_random_folder(dest: str | Path, arch: str = "sd1", seed: int = 0) -> Path:
    """Build a tiny random model and save it as a diffusers folder; atomic (temp folder + rename)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        assemble(arch, make_tiny_components(arch, seed, cache_dir=tmp / ".cfg")).save_pretrained(tmp / "model", safe_serialization=True)
        os.replace(tmp / "model", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _random_fill(model, gen, dtype) -> None:
    """Give every meta parameter random values on the CPU without running the (slow) default
    initialisers: norms ~1, biases ~0, weights ~N(0, 1/fan_in), embeddings ~N(0, 0.02).
    Buffers (position ids) were built normally by init_empty_weights."""
    import torch
    from accelerate.utils import set_module_tensor_to_device

    for name, p in list(model.named_parameters()):
        value = torch.randn(p.shape, generator=gen, dtype=dtype)
        if p.ndim == 1:
            value.mul_(0.02)
            if name.endswith("weight") and "norm" in name:
                value.add_(1.0)
        else:
            value.mul_(0.02 if "embedding" in name else 1.0 / math.sqrt(math.prod(p.shape[1:])))
        set_module_tensor_to_device(model, name, "cpu", value=value)



def save_random_full_size(path: str | Path, seed: int = 0) -> Path:
    """A random-weight SD 1.5 at full size (shipped configs), saved as ONE fp16 original-layout
    .safetensors file, like a pruned SD 1.5 download. Fast: weights are filled on the CPU from
    empty (meta) modules, without running the default initialisers."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from steady.worker.export import save_single_file

    gen = torch.Generator().manual_seed(seed)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(shipped.load_component_config("sd1", "unet"))
        vae = AutoencoderKL.from_config(shipped.load_component_config("sd1", "vae"))
        te = CLIPTextModel(CLIPTextConfig(**shipped.load_component_config("sd1", "text_encoder")))
    for module in (unet, vae, te):
        _random_fill(module, gen, torch.float16)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=te, tokenizer=CLIPTokenizer.from_pretrained(shipped.tokenizer_dir(), local_files_only=True),
        unet=unet, scheduler=PNDMScheduler.from_config(shipped.load_component_config("sd1", "scheduler")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return save_single_file(pipe, Path(path), "sd1", dtype=torch.float16)


def main(argv: list[str]) -> None:
    """python -m steady.worker.random_model full OUT.safetensors | tiny OUT_FOLDER [ARCH]"""
    if len(argv) >= 2 and argv[0] == "full":
        print(save_random_full_size(argv[1]))
    elif len(argv) >= 2 and argv[0] == "tiny":
        print(save_random_folder(argv[1], arch=argv[2] if len(argv) > 2 else "sd1"))
    else:
        raise SystemExit(main.__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
