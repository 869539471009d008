"""The image's VAE (step 1 of steady.worker.recipe, after the pipeline) and the decode's NaN guard
(step 6). Part of the worker (torch).

    swap_vae(held, params)             # the VAE of params.extra["vae"] on held.pipe, or its own back
    with decode_guard(pipe, warnings): # a decode that returns NaNs in half precision, once more in float32
        pipe(...)

A VAE file is built as a diffusers AutoencoderKL from the model's own VAE config (the one the
loader made from the shipped configs, with its scaling factor) and loaded strictly: the original
(ldm) layout through diffusers' converter (convert_ldm_vae_checkpoint), the diffusers layout as it
is, a diffusers VAE folder by from_pretrained (local files only). It takes the device and dtype of
the model's VAE. The model's own VAE is kept while another is on, and put back for an image that
asks for none; a swapped-in VAE is dropped (and collected) when the next image asks for another,
so at most one VAE besides the model's is alive.

NaNs: SDXL's VAE (and some SD 1.5 VAEs) overflow in float16 and decode to NaNs, which A1111 users
see as black images. The guard wraps the VAE's decode for one image: when the result holds NaN or
infinite values it decodes the same latents again with the VAE in float32 and says so in the
image's warnings; the VAE goes back to its dtype after. Tests inject the NaNs (``nan_once``): a
CPU has no float16 overflow to show.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any


def swap_vae(held: Any, params: Any, allow_pickle: bool) -> bool:
    """Put the VAE ``params.extra["vae"]`` asks for on ``held.pipe`` (the model's own for none).
    Returns True when the pipeline's VAE changed (the memory plan must place it again)."""
    want = params.extra.get("vae") or None
    key = str(want["hash"]) if want else ""
    if key == held.vae_key:
        return False
    if held.base_vae is None:
        held.base_vae = held.pipe.vae  # the model's own, kept while another is on
    if held.frozen:  # the VAE going out must be collectable
        gc.unfreeze()
        held.frozen = False
    held.pipe.vae = held.base_vae  # the old swapped-in VAE is dropped here
    held.vae_key = ""
    gc.collect()
    if want:
        from steady.worker.precision import is_mixed, mixed_vae

        vae = load_vae(want, held.base_vae, allow_pickle)
        if is_mixed(held.pipe):  # bfloat16 weights, float32 latents: the model's VAE has the same hooks
            mixed_vae(vae)
        held.pipe.vae = vae
        held.vae_key = key
    return True


def load_vae(entry: dict[str, Any], like: Any, allow_pickle: bool) -> Any:
    """An AutoencoderKL with the weights of ``entry``'s file, built from ``like``'s config and put
    on its device in its dtype."""
    from diffusers import AutoencoderKL

    path = str(entry["path"])
    config = dict(like.config)
    if entry.get("format") == "diffusers":
        vae = AutoencoderKL.from_pretrained(path, local_files_only=True)
        vae.register_to_config(scaling_factor=config.get("scaling_factor", vae.config.scaling_factor))
    else:
        state = _read(path, allow_pickle)
        state = {k[len("first_stage_model."):] if k.startswith("first_stage_model.") else k: v for k, v in state.items()}
        if entry.get("layout") == "ldm":
            from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

            state = convert_ldm_vae_checkpoint(state, config)
        vae = AutoencoderKL.from_config({k: v for k, v in config.items() if not k.startswith("_")})
        vae.load_state_dict(state, strict=True)
        del state
    return vae.to(device=like.device, dtype=like.dtype).eval().requires_grad_(False)


def _read(path: str, allow_pickle: bool) -> dict[str, Any]:
    if path.lower().endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    from steady.worker.tensorfile import pickled_state

    return pickled_state(path, allow_pickle)


@contextlib.contextmanager
def decode_guard(pipe: Any, warnings: list[str], nan_once: bool = False) -> Iterator[None]:
    """While the pipeline runs: a VAE decode whose result is not finite is done again in float32
    (a warning line added to ``warnings``). ``nan_once``: tests only, the first decode's result is
    made NaN, as a float16 overflow makes it."""
    import torch

    vae = pipe.vae
    decode = type(vae).decode  # diffusers' own, with its offload hook
    poisoned = [not nan_once]

    def guarded(z: Any, *args: Any, **kwargs: Any) -> Any:
        out = decode(vae, z, *args, **kwargs)
        sample = out[0] if isinstance(out, tuple) else out.sample
        injected = not poisoned[0]
        if injected:
            poisoned[0] = True
            sample.fill_(float("nan"))
        if torch.isfinite(sample).all() or (vae.dtype == torch.float32 and not injected):
            return out  # finite, or already float32: nothing a second decode would change
        dtype = vae.dtype
        warnings.append(f"the VAE decode returned NaNs in {str(dtype).removeprefix('torch.')}; "
                        "decoded again in float32 for this image")  # fmt: skip
        try:
            vae.to(torch.float32)
            return decode(vae, z.to(torch.float32), *args, **kwargs)
        finally:
            vae.to(dtype)

    vae.decode = guarded  # this object only, for this image
    try:
        yield
    finally:
        del vae.decode
