"""The OpenVINO backend's cache names and memory, torch-free (the worker side is
steady.worker.openvino_unet; docs/speed.md).

    ir_dir(cfg.cache_dir, params)          # STEADY_HOME/cache/openvino/<model hash>-<dtype>-<LoRA key>-v<format>
    check_openvino(resolved, plan, root)   # BadInput naming backend when OpenVINO's peak would not fit in RAM

The UNet's IR is one per model file, dtype and UNet LoRA set: a LoRA changes the UNet's weights,
so images with another set (or other UNet weights) use another IR, converted the first time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from steady.errors import BadInput
from steady.params import ImageParams
from steady.request.planner import GIB, InsufficientMemory, Plan

IR_FORMAT = 1  # bump when the converted wrapper's inputs or outputs change: old IRs are then not read
IR_NAME = "unet.xml"
# Peak RSS of a conversion over the pipeline held in bfloat16, measured on SD 1.5 (860 M UNet
# parameters): 3.8 GiB (docs/benchmarks.md), i.e. 4 bytes per UNet parameter (the UNet is traced
# in float32, and the IR's float16 copy is made while it is held) and about 0.5 GiB more.
CONVERT_BYTES_PER_PARAM = 4
CONVERT_OVERHEAD = GIB // 2
# Peak RSS of a run on OpenVINO over torch's in bfloat16, with the IR on disk: compiling a shape
# holds the IR's weights as read and the compiled model's copy (the torch UNet's weights are freed
# before). Measured 2.3-2.4 bytes per UNet parameter on SD 1.5 at 256² (+1.9 GiB) and SDXL at 512²
# (+5.5 GiB; docs/benchmarks.md): 1.25 times the weights' bytes in the run's dtype.
RUN_WEIGHT_FACTOR = 1.25
DISK_RESERVE = 256 * 2**20  # beyond the IR's weights: its graph, and room left on the disk


def lora_key(params: ImageParams) -> str:
    """The part of the cache key that the image's UNet LoRAs make ("base" without any)."""
    entries = [(str(e["hash"]), float(e["unet"])) for e in params.extra.get("loras", []) if e.get("unet")]
    if not entries:
        return "base"
    return "lora" + hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:12]


def ir_dir(cache_root: Path, params: ImageParams) -> Path:
    """The IR's folder for this image's model, dtype and UNet LoRAs."""
    return Path(cache_root) / "openvino" / f"{params.model_hash}-{params.dtype}-{lora_key(params)}-v{IR_FORMAT}"


def conversion_extra(unet_params: int) -> int:
    """Bytes a first conversion needs at its peak beyond the pipeline it converts."""
    return unet_params * CONVERT_BYTES_PER_PARAM + CONVERT_OVERHEAD


def run_extra(unet_params: int, dtype: str) -> int:
    """Bytes a run on OpenVINO with its IR on disk needs at its peak beyond torch's plan."""
    return int(unet_params * (4 if dtype == "float32" else 2) * RUN_WEIGHT_FACTOR)


def check_openvino(resolved: Any, plan: Plan, cache_root: Path) -> None:
    """Refuse (BadInput naming backend) a run on OpenVINO whose peak does not fit in the RAM the
    plan had: a first image that converts the UNet (``conversion_extra``) and needs room for its IR
    (float16 weights, or float32 in a float32 run) on the cache's disk, or, with the IR on disk,
    compiling it (``run_extra``)."""
    params = dataclasses.replace(resolved.base_params(), dtype=plan.dtype)
    where = ir_dir(cache_root, params)
    unet = plan.footprint.params.get("unet", 0)
    if (where / IR_NAME).is_file():
        need, doing = plan.peak_ram + run_extra(unet, plan.dtype), "running the UNet on OpenVINO"
    else:
        disk = unet * (4 if plan.dtype == "float32" else 2) + DISK_RESERVE
        existing = next(p for p in (where, *where.parents) if p.exists())
        free = shutil.disk_usage(existing).free
        if free < disk:
            raise BadInput("backend", "openvino", f"converting the UNet to OpenVINO needs about {disk / GIB:.1f} GiB "
                                                  f"free in {cache_root} and {free / GIB:.1f} GiB are; free some, or "
                                                  "use --backend torch")  # fmt: skip
        need, doing = plan.peak_ram + conversion_extra(unet), "converting the UNet to OpenVINO the first time"
    if need > plan.ram_budget:
        raise InsufficientMemory("backend", "openvino", f"{doing} needs about {need / GIB:.1f} GiB of RAM at its peak "
                                 f"(torch: {plan.peak_ram / GIB:.1f} GiB) and {plan.ram_budget / GIB:.1f} GiB are "
                                 "available; close programs, or use --backend torch", need=need,
                                 have=plan.ram_budget, resource="ram")  # fmt: skip
