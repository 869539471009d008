"""Applying a planner's Plan to a loaded pipeline, and surviving a GPU out-of-memory error.

    apply_plan(pipe, p)                                # offload / slicing / tiling / threads
    run_with_oom_retry(lambda p: ..., p, on_event)     # one retry, one rung thriftier

The worker side of steady.request.planner: torch is imported lazily, only where it is used.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from steady.request.planner import OomEvent, OutOfMemory, Plan, _gib, next_thriftier

T = TypeVar("T")


def apply_plan(pipe: Any, p: Plan) -> list[str]:
    """Place a CPU-loaded pipeline and set its memory flags as `p` says; return what was done."""
    import torch

    done = []
    if p.threads:
        torch.set_num_threads(p.threads)
        done.append(f"threads={p.threads}")
    # 0. The GPU memory cap (config's vram_limit_gib), set both ways: torch's caching allocator
    # raises an out-of-memory error past it, which run_with_oom_retry meets one rung thriftier.
    if p.vram_limit is not None and p.device.startswith("cuda"):
        index = torch.device(p.device).index or 0
        total = torch.cuda.get_device_properties(index).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, p.vram_limit / total), index)
        done.append(f"vram_limit={_gib(p.vram_limit)}")
    elif torch.cuda.is_initialized():  # an earlier plan's cap in this worker
        for index in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(1.0, index)
    # 1. Placement. The offload hooks move components themselves; calling .to() after them is
    # refused by diffusers, so exactly one of these runs.
    if p.strategy == "model-offload":
        pipe.enable_model_cpu_offload(device=p.device)
    elif p.strategy == "sequential-offload":
        pipe.enable_sequential_cpu_offload(device=p.device)
    else:
        pipe.to(p.device)
    done.append(p.strategy)
    # 2. Flags, set both ways, so that a reused pipeline does not keep an earlier plan's.
    if p.attention_slicing:
        pipe.enable_attention_slicing()
    elif any(type(proc).__name__ == "SlicedAttnProcessor" for proc in pipe.unet.attn_processors.values()):
        pipe.disable_attention_slicing()
    vae = pipe.vae
    if p.vae_slicing:
        vae.enable_slicing()
    else:
        vae.disable_slicing()
    if p.vae_tiling:
        vae.enable_tiling()
        # diffusers tiles at the VAE's sample_size (1024 for SDXL), which would not tile a
        # 1024-px image at all; the planner's estimate assumes VAE_TILE.
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        vae.tile_sample_min_size = p.vae_tile
        vae.tile_latent_min_size = p.vae_tile // scale
    else:
        vae.disable_tiling()
    done += [n for n in ("attention_slicing", "vae_slicing", "vae_tiling") if getattr(p, n)]
    return done


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (torch.cuda.OutOfMemoryError) by class name, so that no torch
    import is needed; older torch raised RuntimeError('CUDA out of memory'), MPS its own text."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 4:
        if any(c.__name__ == "OutOfMemoryError" for c in type(e).__mro__):
            return True
        text = str(e)
        if "CUDA out of memory" in text or "MPS backend out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text:
            return True
        e, seen = e.__cause__, seen + 1
    return False


def _release_cached_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")  # only if the job imported it: no import just for this
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_oom_retry(fn: Callable[[Plan], T], p: Plan, on_event: Callable[[OomEvent], None] | None = None) -> T:
    """fn(p); on a GPU out-of-memory error, once more with next_thriftier(p), reporting an OomEvent.
    `fn` must apply the plan it is given (apply_plan). A second out-of-memory error, or an error
    on the last rung, raises OutOfMemory; any other error passes through untouched."""
    first = _attempt(fn, p)
    if first.oom is None:
        return first.value
    nxt = next_thriftier(p)
    where = f"at {p.width}x{p.height}, {p.batch} per batch"
    if nxt is None:
        raise OutOfMemory(f"out of GPU memory with the thriftiest strategy ({p.strategy}) {where}: {first.oom}; "
                          "try a smaller size or close programs using the GPU")
    # The failed attempt's tensors went with its frames (only the message was kept); hand the
    # allocator's cached blocks back before trying again.
    _release_cached_memory()
    if on_event is not None:
        on_event(OomEvent(from_strategy=p.strategy, to_strategy=nxt.strategy, error=first.oom, width=p.width,
                          height=p.height, batch=p.batch, device=p.device))
    second = _attempt(fn, nxt)
    if second.oom is None:
        return second.value
    _release_cached_memory()
    raise OutOfMemory(f"out of GPU memory with '{p.strategy}' and again with '{nxt.strategy}' {where} (estimated "
                      f"{_gib(nxt.peak_vram)} of {_gib(nxt.vram_budget)} usable): {second.oom}; "
                      "try a smaller size or close programs using the GPU")


@dataclass(frozen=True)
class _Attempt:
    value: Any = None
    oom: str | None = None  # the first line of the out-of-memory message


def _attempt(fn: Callable[[Plan], Any], p: Plan) -> _Attempt:
    """Run fn(p), turning an out-of-memory error into its message only: holding the exception
    would hold its traceback, whose frames hold the tensors that filled the GPU."""
    try:
        return _Attempt(value=fn(p))
    except Exception as exc:  # filtered just below, everything else re-raised
        if not is_out_of_memory(exc):
            raise
        return _Attempt(oom=(str(exc).strip().splitlines() or [type(exc).__name__])[0][:300])
