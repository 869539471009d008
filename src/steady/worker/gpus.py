"""The GPUs torch can use and their free memory, as the worker sees them.

The worker reports them in its Ready and Heartbeat messages; `python -m steady.worker.gpus` prints
them as JSON for a parent process that needs them before a worker runs and has no NVML
(steady.request.machine.gpu_report): the CUDA context that `mem_get_info` creates then lives and
dies with that short child, never in the CLI or the server.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from steady.request.machine import Gpu


def torch_gpus() -> list[Gpu]:
    import torch

    gpus: list[Gpu] = []
    if not torch.cuda.is_available():
        return gpus
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        try:
            free, total = torch.cuda.mem_get_info(i)
        except RuntimeError:  # a device in exclusive mode held by another process: none is free
            free, total = 0, props.total_memory
        gpus.append(Gpu(index=i, name=props.name, vram_total=int(total), vram_free=int(free)))
    return gpus


def main() -> None:
    sys.stdout.write(json.dumps([asdict(g) for g in torch_gpus()]))


if __name__ == "__main__":
    main()
