"""This CPU's ceiling and a UNet step's arithmetic, for `steady bench --suite cpu`. Part of the
worker (torch); run as a child so the bench process stays torch-free:

    python -m steady.worker.ceiling '{"threads": 2, "model": PATH, "side": 512, "dtype": "bfloat16"}'

prints one JSON line: the best of 3 square matmuls at 4096 in float32 and bfloat16 (TFLOP/s: the
machine's ceiling) and, with a model, the FLOPs of one CFG UNet step at that size (torch's
FlopCounterMode), from which a measured s/step becomes TFLOP/s and a fraction of the ceiling.
"""

from __future__ import annotations

import json
import sys
import time


def matmul_tflops(dtype_name: str, n: int = 4096, tries: int = 3) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(tries))
    return 2 * n**3 / best / 1e12


def unet_step_flops(model: str, side: int) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from steady.models.detect import inspect_model
    from steady.worker.loader import load_pipeline

    pipe = load_pipeline(inspect_model(model), device="cpu", dtype=torch.float32)
    unet = pipe.unet
    latent = side // pipe.vae_scale_factor
    sample = torch.randn(2, unet.config.in_channels, latent, latent)  # CFG: a batch of two
    context = torch.randn(2, pipe.tokenizer.model_max_length, unet.config.cross_attention_dim)
    extra = {}
    if unet.config.addition_embed_type == "text_time":  # SDXL
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 1280), "time_ids": torch.randn(2, 6)}
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(sample, 500, encoder_hidden_states=context, **extra)
    return int(counter.get_total_flops())


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str]) -> None:
    import torch

    args = json.loads(argv[0]) if argv else {}
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    out = {"threads": torch.get_num_threads(), "matmul_tflops": {d: matmul_tflops(d) for d in ("float32", "bfloat16")}}
    if args.get("model"):
        out["unet_step_flops"] = unet_step_flops(args["model"], int(args["side"]))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
