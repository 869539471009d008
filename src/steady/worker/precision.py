"""bfloat16 weights with float32 latents, on the CPU. Part of the worker (torch).

On a CPU with native bfloat16 (AVX512-BF16 or AMX), `--dtype auto` runs the UNet, the VAE and the
text encoder in bfloat16 (steady.request.devices decides, torch-free); the UNet and the VAE also
in channels_last, the layout oneDNN's bf16 convolutions are fastest in. The latents and the
sampler's arithmetic stay in float32: hooks cast the UNet's floating inputs to bfloat16 and its
output back to float32, and cast what enters the VAE's decoder (and encoder) to bfloat16. So
only the networks' own arithmetic is rounded, not the sampler's sums of many small steps.

    mixed_cpu_bf16(pipe)            # after loading on the CPU in bfloat16
    latents_dtype(pipe)             # float32 for such a pipeline, else the UNet's dtype
"""

from __future__ import annotations

from typing import Any

import torch

_MARK = "_steady_fp32_latents"


def mixed_cpu_bf16(pipe: Any) -> None:
    """Set up ``pipe`` (on the CPU, weights in bfloat16) to keep its latents in float32."""
    if getattr(pipe, _MARK, False):
        return
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.unet.register_forward_pre_hook(_inputs_to_weights_dtype, with_kwargs=True)
    pipe.unet.register_forward_hook(_output_to_float32)
    mixed_vae(pipe.vae)
    setattr(pipe, _MARK, True)


def is_mixed(pipe: Any) -> bool:
    return bool(getattr(pipe, _MARK, False))


def mixed_vae(vae: Any) -> None:
    """A VAE of such a pipeline (its own, or one swapped in by steady.worker.vae): channels_last,
    and what enters its decoder and encoder cast to its weights' dtype."""
    vae.to(memory_format=torch.channels_last)
    for entry in (vae.decoder, getattr(vae, "post_quant_conv", None), vae.encoder, getattr(vae, "quant_conv", None)):
        if entry is not None:
            entry.register_forward_pre_hook(_inputs_to_weights_dtype, with_kwargs=True)


def latents_dtype(pipe: Any) -> torch.dtype:
    return torch.float32 if getattr(pipe, _MARK, False) else pipe.unet.dtype


def _weights_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def _inputs_to_weights_dtype(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    dtype = _weights_dtype(module)
    return _cast(args, dtype), _cast(kwargs, dtype)


def _output_to_float32(module: torch.nn.Module, args: tuple, output: Any) -> Any:
    if isinstance(output, tuple):
        return (output[0].float(), *output[1:])
    output.sample = output.sample.float()  # UNet2DConditionOutput
    return output
