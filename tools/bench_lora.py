"""What a LoRA costs in the worker's step 3 (steady.worker.lora), on one model, in this process.

Puts random peft LoRA layers of rank R on the model's UNet (attention, projections, feed-forward)
and text encoder, saves them in kohya's layout (what A1111 users have), then times, through
steady.worker.lora.apply_loras on the loaded pipeline:
    load      the first image that asks for the file (load_lora_weights + set_adapters)
    reweight  an image that asks for the kept file at another weight (set_adapters only)
    remove    an image that asks for none (unload_lora_weights)
and one UNet step at SIZE px with and without the adapter, alternated REPEAT times (the machine's
other load shows as spread); checks that the UNet's output after removal is the base's, bit for
bit. Prints one JSON line.

    python tools/bench_lora.py MODEL [--rank 32] [--size 512] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path


def build_lora(pipe, rank: int, path: Path) -> int:
    """Random LoRA layers of ``rank`` for the pipeline's UNet and text encoder, saved in kohya's
    layout at ``path`` (the pipeline itself is not changed). Returns the number of tensors."""
    import copy

    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    unet, text = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.text_encoder)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank / 2, init_lora_weights=False, target_modules=[
            "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]), unet)  # fmt: skip
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank / 2, init_lora_weights=False,
                                           target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]), text)  # fmt: skip
    tensors = {}
    for prefix, module, text_model in (("lora_unet_", unet, ""), ("lora_te_", text, "text_model.")):
        for key, value in get_peft_model_state_dict(module).items():
            name, kind = key.rsplit(".lora_", 1)
            name = prefix + (name if name.startswith("text_model.") else text_model + name).replace(".", "_")
            tensors[name + (".lora_down.weight" if kind.startswith("A") else ".lora_up.weight")] = (value * 0.01).half().contiguous()
            tensors[name + ".alpha"] = torch.tensor(rank / 2)
    save_file(tensors, str(path))
    return len(tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint file or diffusers folder (SD 1/2)")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--size", type=int, default=512, help="image side the UNet step is timed at")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from steady.models.detect import inspect_model
    from steady.params import ImageParams
    from steady.worker.loader import load_pipeline
    from steady.worker.lora import apply_loras
    from steady.worker.pipeline import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(inspect_model(args.model), device="cpu", dtype=torch.float32, allow_pickle=False)
    folder = Path(tempfile.mkdtemp(prefix="steady-bench-lora-"))
    path = folder / f"rank{args.rank}.safetensors"
    n_tensors = build_lora(pipe, args.rank, path)
    base = ImageParams(prompt="x", negative_prompt="", steps=1, cfg_scale=7.0, width=args.size, height=args.size,
                       seed=1, sampler="Euler", clip_skip=1, model_name="m", model_hash="", model_arch="sd1",
                       device="cpu", dtype="float32")  # fmt: skip

    def asking(weight: float) -> ImageParams:
        entry = {"name": "bench", "hash": "bench", "te": weight, "unet": weight, "path": str(path)}
        return dataclasses.replace(base, extra={"loras": [entry]})

    latent = args.size // pipe.vae_scale_factor
    sample = torch.randn(1, pipe.unet.config.in_channels, latent, latent, generator=torch.Generator().manual_seed(0))
    context = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))

    def unet_step() -> tuple[float, torch.Tensor]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = pipe.unet(sample, torch.tensor([500]), encoder_hidden_states=context).sample.clone()
        return time.perf_counter() - t0, out

    loaded: dict[str, str] = {}
    _, reference = unet_step()
    timed = {}
    for name, params in (("load", asking(1.0)), ("reweight", asking(0.7)), ("remove", base)):
        t0 = time.perf_counter()
        apply_loras(pipe, loaded, params)
        timed[name] = round(time.perf_counter() - t0, 4)
    _, after = unet_step()
    steps: dict[str, list[float]] = {"base": [], "lora": []}
    for _ in range(args.repeat):
        for name, params in (("base", base), ("lora", asking(1.0))):
            apply_loras(pipe, loaded, params)
            steps[name].append(round(unet_step()[0], 3))
    apply_loras(pipe, loaded, base)
    print(json.dumps({
        "model": str(args.model), "rank": args.rank, "lora_mib": round(path.stat().st_size / 2**20, 1),
        "tensors": n_tensors, "seconds": timed, "unet_step_seconds": steps, "size": args.size,
        "base_exact_after_removal": bool(torch.equal(after, reference)), "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "load_average": list(os.getloadavg()),
    }))  # fmt: skip
    path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
