"""The UNet on OpenVINO (`--backend openvino`, `pip install steady[openvino]`). Part of the worker.

The pipeline's torch UNet, with the image's LoRAs on it, is converted once to OpenVINO's IR
(``openvino.convert_model`` on a small wrapper that takes float32 tensors and returns the float32
prediction) and saved under STEADY_HOME/cache/openvino/<model hash>-<dtype>-<LoRA key>/, written
into a temporary folder and renamed, so a crash leaves no half IR. A later start reads the IR
(no conversion) and compiles it per input shape on the CPU, with the bfloat16 inference-precision
hint when the run's dtype is bfloat16. At most MAX_SHAPES compiled shapes are kept. OpenVINO's own
compiled-model cache (CACHE_DIR) is not used: measured on SD 1.5 at 256², importing a cached blob
took longer than compiling (9.4 against 7.2 s) and peaked 1.6 GiB higher, and each blob took
1.6 GiB of disk (docs/speed.md).

    unet = ov_unet(pipe, params, cache_root, threads)   # convert or read, then
    pipe.unet = unet                                     # the diffusers pipeline calls it as its UNet

The LoRA key is the image's UNet LoRAs (file hash and UNet weight, in order): another LoRA set is
another IR. The text encoder (and textual-inversion embeddings, LoRAs' text-encoder parts) stays
in torch. Once the IR is read the torch UNet's weights are freed: the OpenVINO model holds its own.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from steady.errors import BadInput
from steady.params import ImageParams
from steady.request.openvino import IR_FORMAT, IR_NAME, ir_dir
from steady.sysmem import malloc_trim

log = logging.getLogger(__name__)

MAX_SHAPES = 2  # compiled shapes kept (CFG batch and size); more are compiled again when asked for


@dataclass(frozen=True)
class OvStats:
    """What making the OpenVINO UNet cost: seconds converting (0.0: the IR was on disk already),
    reading the IR, and where it is."""

    converted_s: float
    read_s: float
    ir_dir: str


class _Traced(torch.nn.Module):
    """What is converted: the UNet with float32 inputs and a float32 prediction (the weights'
    dtype inside), the timestep one per batch entry; SDXL's added conditioning as two inputs."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet
        self.dtype = next(unet.parameters()).dtype

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                text_embeds: torch.Tensor | None = None, time_ids: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        added = None
        if text_embeds is not None:
            added = {"text_embeds": text_embeds.to(self.dtype), "time_ids": time_ids.to(self.dtype)}
        out = self.unet(sample.to(self.dtype), timestep, encoder_hidden_states=encoder_hidden_states.to(self.dtype),
                        added_cond_kwargs=added, return_dict=False)[0]  # fmt: skip
        return out.float()


def _is_xl(unet: Any) -> bool:
    return getattr(unet.config, "addition_embed_type", None) == "text_time"


def _example(unet: Any) -> dict[str, torch.Tensor]:
    """Small float32 inputs to trace with (the IR's shapes stay dynamic): a CFG batch of two."""
    cfg = unet.config
    side = 2 ** (len(cfg.block_out_channels) - 1) * 2
    out = {"sample": torch.randn(2, cfg.in_channels, side, side), "timestep": torch.tensor([500.0, 500.0]),
           "encoder_hidden_states": torch.randn(2, 77, cfg.cross_attention_dim)}  # fmt: skip
    if _is_xl(unet):
        time_dim = cfg.addition_time_embed_dim * 6
        out["text_embeds"] = torch.randn(2, cfg.projection_class_embeddings_input_dim - time_dim)
        out["time_ids"] = torch.randn(2, 6)
    return out


def convert(unet: torch.nn.Module, dest: Path) -> float:
    """Convert ``unet`` to an IR in ``dest`` (atomically: a temporary folder renamed); seconds.

    A bfloat16 UNet is converted in float32 (in place: the caller frees it afterwards), as an IR
    traced from bfloat16 weights computes NaNs on OpenVINO 2026.4, and saved with float16 weights
    (half the disk; the bf16 hint computes the same either way)."""
    import openvino as ov

    t0 = time.perf_counter()
    half = next(unet.parameters()).dtype != torch.float32
    unet.float()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), telemetry_off():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # diffusers' shape asserts, fixed at trace
            model = ov.convert_model(_Traced(unet).eval(), example_input=_example(unet))
        ov.save_model(model, tmp / IR_NAME, compress_to_fp16=half)  # a float32 run keeps float32 weights
        del model
        (tmp / "steady.json").write_text(json.dumps({"format": IR_FORMAT, "openvino": ov.__version__}))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            tmp.rename(dest)
        except OSError:  # another worker wrote it meanwhile: theirs is as good
            if not (dest / IR_NAME).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return time.perf_counter() - t0


# OpenVINO's converter sends usage statistics (openvino_telemetry) unless a consent file in the
# user's home says no: a network call that steady, offline by promise, must not make. These of its
# modules hold the telemetry module as ``tm``; during a conversion they get OpenVINO's own stub.
_TELEMETRY_USERS = ("openvino.tools.ovc.convert_impl", "openvino.tools.ovc.telemetry_utils", "openvino.tools.ovc.utils")


@contextlib.contextmanager
def telemetry_off() -> Iterator[None]:
    """OpenVINO's telemetry stub in place of openvino_telemetry while the block runs."""
    stub = importlib.import_module("openvino.tools.ovc.telemetry_stub")
    saved = []
    for name in _TELEMETRY_USERS:
        module = importlib.import_module(name)
        if hasattr(module, "tm"):
            saved.append((module, module.tm))
            module.tm = stub
    try:
        yield
    finally:
        for module, tm in saved:
            module.tm = tm


@dataclass(frozen=True)
class _Output:
    """What diffusers reads of a UNet's output: ``.sample`` (return_dict=True) or ``[0]``."""

    sample: torch.Tensor

    def __getitem__(self, index: int) -> torch.Tensor:
        return (self.sample,)[index]


class OvUNet(torch.nn.Module):
    """The UNet the diffusers pipeline calls: the torch UNet's config, dtype and device, and a
    forward that runs the compiled OpenVINO model for the input's shape (compiled when first seen,
    at most MAX_SHAPES kept)."""

    def __init__(self, ir: Path, config: Any, dtype: torch.dtype, precision: str, threads: int):
        super().__init__()
        self.ir, self.config, self._dtype = ir, config, dtype
        self.precision, self.threads = precision, threads
        self.compiled: OrderedDict[tuple, Any] = OrderedDict()
        self.compile_s: dict[tuple, float] = {}  # seconds each shape took to compile (or import)
        scale = 2 ** (len(config.block_out_channels) - 1)
        self.multiple = scale  # a latent side must be a multiple of this (the traced up-sampling)
        self.attn_processors: dict[str, Any] = {}  # steady.worker.strategy reads it: no sliced attention here
        if _is_xl(self):  # SDXL's pipelines check the added conditioning's width against this layer's
            self.add_embedding = SimpleNamespace(linear_1=SimpleNamespace(
                in_features=config.projection_class_embeddings_input_dim))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _compiled(self, shapes: dict[str, tuple[int, ...]]) -> Any:
        import openvino as ov

        key = tuple(sorted(shapes.items()))
        if key in self.compiled:
            self.compiled.move_to_end(key)
            return self.compiled[key]
        while len(self.compiled) >= MAX_SHAPES:
            self.compiled.popitem(last=False)
        t0 = time.perf_counter()
        core = ov.Core()
        model = core.read_model(self.ir)  # read per shape (0.1 s), not held: its weights would stay resident
        model.reshape({name: ov.PartialShape(list(shape)) for name, shape in shapes.items()})
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": self.threads}  # fmt: skip
        self.compiled[key] = core.compile_model(model, "CPU", config)
        self.compile_s[key] = time.perf_counter() - t0
        return self.compiled[key]

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor,
                timestep_cond: Any = None, attention_mask: Any = None, cross_attention_kwargs: Any = None,
                added_cond_kwargs: dict[str, torch.Tensor] | None = None, return_dict: bool = True,
                **others: Any) -> Any:  # fmt: skip
        unused = [name for name, v in (("timestep_cond", timestep_cond), ("attention_mask", attention_mask),
                                       *others.items()) if v is not None]  # fmt: skip
        if unused or (cross_attention_kwargs and set(cross_attention_kwargs) - {"scale"}):
            raise BadInput("backend", "openvino", f"does not take the UNet input {(unused or ['cross_attention_kwargs'])[0]} "
                                                  "(this model or option needs --backend torch)")  # fmt: skip
        h, w = sample.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise BadInput("backend", "openvino", f"needs latent sides in multiples of {self.multiple}; {w}x{h} "
                                                  "are not (choose a size in larger steps, or --backend torch)")  # fmt: skip
        batch = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        inputs = {"sample": sample.float(), "timestep": t.expand(batch).contiguous() if t.numel() == 1 else t,
                  "encoder_hidden_states": encoder_hidden_states.float()}  # fmt: skip
        if _is_xl(self):
            inputs["text_embeds"] = added_cond_kwargs["text_embeds"].float()
            inputs["time_ids"] = added_cond_kwargs["time_ids"].float()
        arrays = {name: v.detach().cpu().contiguous().numpy() for name, v in inputs.items()}
        compiled = self._compiled({name: tuple(a.shape) for name, a in arrays.items()})
        result = compiled(arrays, share_inputs=True)
        out = torch.from_numpy(result[compiled.output(0)].copy())
        return _Output(out) if return_dict else (out,)


def ov_unet(unet: torch.nn.Module, params: ImageParams, cache_root: Path, threads: int) -> tuple[OvUNet, OvStats]:
    """The OpenVINO UNet for ``unet`` (with the image's LoRAs on it): its IR converted once and
    cached (steady.worker.openvino_unet's docstring), read back. The caller frees ``unet`` (a
    conversion leaves it in float32)."""
    import openvino as ov

    where = ir_dir(cache_root, params)
    dtype = next(unet.parameters()).dtype
    converted = 0.0
    if not (where / IR_NAME).is_file():
        log.info("converting the UNet to OpenVINO into %s (once per model, dtype and LoRA set)", where)
        converted = convert(unet, where)
    t0 = time.perf_counter()
    ov.Core().read_model(where / IR_NAME)  # readable: a broken IR fails here, not at the first step
    read_s = time.perf_counter() - t0
    # bfloat16 where the CPU computes it (OpenVINO refuses the hint elsewhere; float32 then, as torch
    # would convert inside every operation anyway).
    native = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if dtype == torch.bfloat16 and native else "f32"
    wrapper = OvUNet(where / IR_NAME, unet.config, dtype, precision, threads or torch.get_num_threads())
    return wrapper, OvStats(converted, read_s, str(where))


def use_openvino(pipe: Any, params: ImageParams) -> OvStats:
    """Step 3 of steady.worker.recipe on OpenVINO: ``pipe``'s UNet (its LoRAs on) replaced by the
    OpenVINO one, and the torch UNet's weights freed."""
    from steady.config import settings

    unet = pipe.unet
    wrapper, stats = ov_unet(unet, params, settings().cache_dir, torch.get_num_threads())
    pipe.unet = wrapper
    free_weights(unet)
    del unet
    gc.collect()
    malloc_trim()  # now, not after the image: OpenVINO's compile did not reuse them (SD 1.5: peak 5.5 -> 4.3 GiB)
    log.info("UNet on OpenVINO: converted in %.1f s, read in %.2f s (%s)", stats.converted_s, stats.read_s, stats.ir_dir)
    return stats


def free_weights(unet: torch.nn.Module) -> None:
    """Release a torch UNet's parameters and buffers (after the OpenVINO one is made from it)."""
    unet.to("meta")
