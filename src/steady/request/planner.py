"""Preflight memory planner: how a job runs on this machine, or why it cannot.

    fp = footprint_from_info(info)                    # parameter counts from weight shapes
    est = estimate(fp, width, height, batch, dtype)   # bytes: weights, UNet step, VAE decode
    p = plan(fp, machine, width=..., height=..., batch=..., device="auto", dtype="auto")
    next_thriftier(p)                                  # the rung an out-of-memory retry uses
Applying a plan to a pipeline and the out-of-memory retry live in steady.worker.strategy.

The GPU ladder, fastest first, thriftiest last (docs/planner.md has the formulas and sources):
    gpu                 everything on the GPU
    gpu+vae-tiling      everything on the GPU; the VAE decodes in 512-px tiles, one image at a time
    model-offload       one component at a time on the GPU (diffusers enable_model_cpu_offload),
                        with the VAE flags only if the decode needs them
    sequential-offload  one layer at a time (enable_sequential_cpu_offload), every thrifty flag on
On the CPU: bfloat16 where the CPU has it natively; elsewhere float32, then bfloat16 (half the
memory) when float32 does not fit, which is how SDXL (about 7 GB of weights in bfloat16) runs on a
16 GB machine without a GPU, and the plan's reason says so.
A job that fits nowhere without swap raises InsufficientMemory with what would fit.

Pure logic: no torch or diffusers import, so the supervisor can plan before a worker starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steady.errors import BadInput, SteadyError
from steady.request.machine import GIB, MIB, Gpu, Machine, with_vram_limit

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GPU_LADDER = ("gpu", "gpu+vae-tiling", "model-offload", "sequential-offload")
STRATEGIES = GPU_LADDER + ("cpu",)

# Parameter counts of the shipped full-size configs (tests/models/test_shipped_configs.py counts
# them by building each component).
KNOWN_PARAMS: dict[str, dict[str, int]] = {
    "sd1": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
}
# Heads and level of the UNet's highest-resolution attention (tokens = latent pixels / 4**level).
KNOWN_ATTENTION = {"sd1": {"heads": 8, "level": 0}, "sd2": {"heads": 5, "level": 0}, "sdxl": {"heads": 10, "level": 1}}
# ComfyUI's memory_usage_factor per family (comfy/supported_models.py): SD15 1.0, SD20 1.0, SDXL 0.8.
UNET_FACTOR = {"sd1": 1.0, "sd2": 1.0, "sdxl": 0.8}
# Where each component's weights live in an original-layout single file.
_SD = {"unet": "model.diffusion_model.", "vae": "first_stage_model.", "text_encoder": "cond_stage_model."}
_PREFIXES = {"sd1": _SD, "sd2": _SD, "sdxl": {**_SD, "text_encoder": "conditioner.embedders.0.",
                                              "text_encoder_2": "conditioner.embedders.1."}}

# Activation constants (docs/planner.md, "Estimates"):
UNET_MIB_PER_LATENT_PIXEL_BYTE = 0.01  # ComfyUI model_base.memory_required, SDPA/xformers branch
VAE_VALUES_PER_PIXEL_CUDA = 2178  # ComfyUI sd.py VAE.memory_used_decode (2178 * 64 per latent pixel)
VAE_VALUES_PER_PIXEL_CPU = 1000  # measured here: peak RSS of one decode at 128..768 px, float32
VAE_TILE = 512  # tile side in pixels; diffusers' default for SDXL (its sample_size, 1024) would not tile
TILE_VALUES_PER_PIXEL = 12  # decoded tiles kept for blending (3 ch x 16/9 overlap) + the output
WORKSPACE = 256 * MIB  # cuBLAS/cuDNN or oneDNN workspaces, text encoder activations
# Peak RSS of a load over what stays resident (tests/models/test_full_size.py holds the loader to it;
# docs/benchmarks.md has the measured SD 1.5 figures): tensors are read one at a time, straight
# into the target dtype, so no component is held twice.
LOAD_OVERHEAD = 512 * MIB
SEQUENTIAL_LAYER = 256 * MIB  # one layer's weights on the GPU + accelerate's hook copies
RUNTIME_RAM_CPU = 768 * MIB  # python + torch + diffusers + transformers imported: 416 MiB measured
RUNTIME_RAM_CUDA = 2 * GIB  # + CUDA runtime, cuBLAS, cuDNN in host memory: NOT measured here
CUDA_CONTEXT = 400 * MIB  # ComfyUI EXTRA_RESERVED_VRAM (600 MiB on Windows)
CUDA_CONTEXT_WINDOWS = 600 * MIB
VRAM_SLACK = 0.10  # of total VRAM: caching-allocator fragmentation (PyTorch #35901)
RAM_RESERVE_MIN = 512 * MIB  # left to the OS and the desktop beyond "available"
RAM_RESERVE_FRACTION = 0.05


class InsufficientMemory(BadInput):
    """Even the thriftiest strategy needs more memory than the machine has without swap."""

    def __init__(self, argument: str, value: object, why: str, *, need: int, have: int, resource: str,
                 fits_at: Size | None = None, fits_batch: int | None = None):
        super().__init__(argument, value, why)
        self.need, self.have, self.resource = need, have, resource
        self.fits_at, self.fits_batch = fits_at, fits_batch


class OutOfMemory(SteadyError):
    """The GPU ran out of memory twice: with the planned strategy and with the next thriftier one."""


@dataclass(frozen=True)
class Size:
    width: int
    height: int


@dataclass(frozen=True)
class ModelFootprint:
    arch: str  # 'sd1' | 'sd2' | 'sdxl' | 'unknown'
    params: dict[str, int]  # component -> parameter count
    attn_heads: int  # heads of the UNet's highest-resolution attention layers
    attn_level: int  # their UNet level: tokens = latent pixels / 4**level
    vae_upcast: bool  # the VAE decodes in float32 when the pipeline runs float16 (SDXL force_upcast)
    unet_factor: float = 1.0  # ComfyUI memory_usage_factor
    source: str = "known"  # where the counts came from

    @property
    def total_params(self) -> int:
        return sum(self.params.values())


@dataclass(frozen=True)
class MemoryEstimate:
    width: int
    height: int
    batch: int
    dtype: str
    device_kind: str  # 'cuda' | 'cpu'
    weights: dict[str, int]  # bytes per component in `dtype`
    vae_dtype: str  # the decode's dtype (float32 when the VAE upcasts)
    vae_weights: int  # VAE weights in vae_dtype
    unet_step: int  # one UNet call, memory-efficient attention (SDPA); guidance doubles the batch
    attention: int  # extra score matrices when attention is not memory-efficient (no SDPA)
    attention_sliced: int  # the same with attention slicing ("auto": half the heads at a time)
    vae_decode: int  # the whole batch at once
    vae_decode_one: int  # one image at a time (VAE slicing)
    vae_decode_tiled: int  # one image at a time in VAE_TILE tiles
    vae_attention: int  # the VAE's mid-block attention without SDPA (one head over all latents)

    @property
    def weights_total(self) -> int:
        return sum(self.weights.values())


@dataclass(frozen=True)
class Plan:
    device: str  # 'cuda', 'cuda:1', 'mps', 'cpu'
    dtype: str
    strategy: str  # one of STRATEGIES
    attention_slicing: bool
    vae_slicing: bool
    vae_tiling: bool
    threads: int | None  # torch.set_num_threads on the CPU; None: leave it
    peak_vram: int  # estimated bytes
    peak_ram: int
    vram_budget: int  # what the estimate was compared with
    ram_budget: int
    fits: bool
    reason: str
    width: int
    height: int
    batch: int
    guidance: bool
    sdpa: bool
    footprint: ModelFootprint
    vae_tile: int = VAE_TILE
    vram_limit: int | None = None  # config's vram_limit_gib: the worker caps torch's CUDA allocator at it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(**{**data, "footprint": ModelFootprint(**data["footprint"])})


@dataclass(frozen=True)
class OomEvent:
    """Reported when a job ran out of GPU memory and is retried one rung thriftier."""

    from_strategy: str
    to_strategy: str
    error: str  # first line of the out-of-memory message
    width: int
    height: int
    batch: int
    device: str


# --- footprints: parameter counts from shapes, never by building a model --------------------
def footprint_for_arch(arch: str, *, params: dict[str, int] | None = None, source: str = "known") -> ModelFootprint:
    if arch not in KNOWN_PARAMS:
        raise BadInput("model", arch, "unknown architecture; expected one of " + ", ".join(KNOWN_PARAMS))
    a = KNOWN_ATTENTION[arch]
    return ModelFootprint(arch=arch, params=dict(params or KNOWN_PARAMS[arch]), attn_heads=a["heads"],
                          attn_level=a["level"], vae_upcast=arch == "sdxl", unet_factor=UNET_FACTOR[arch],
                          source=source)


def params_from_shapes(shapes: dict[str, tuple[int, ...]], arch: str) -> dict[str, int]:
    """Per-component parameter counts of an original-layout state dict ({name: shape}). EMA copies
    and other keys outside the component prefixes are not loaded, so not counted."""
    counts = {c: 0 for c in _PREFIXES[arch]}
    for name, shape in shapes.items():
        for component, prefix in _PREFIXES[arch].items():
            if name.startswith(prefix):
                counts[component] += math.prod(shape)
                break
    return counts


def _attention_from_unet_config(cfg: dict[str, Any], arch: str) -> dict[str, int]:
    """diffusers' SD configs put the head count in `attention_head_dim` (a known misnomer)."""
    types = cfg.get("down_block_types") or []
    level = next((i for i, t in enumerate(types) if "CrossAttn" in t), KNOWN_ATTENTION[arch]["level"])
    heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim") or KNOWN_ATTENTION[arch]["heads"]
    if isinstance(heads, list):
        heads = heads[min(level, len(heads) - 1)]
    return {"heads": int(heads), "level": level}


def footprint_from_info(info: Any) -> ModelFootprint:
    """From a steady.models.detect.ModelInfo: the tensor shapes of a single file (a safetensors
    header, or a pickle's state dict read without running it), or each component file's in a
    diffusers folder; a file whose architecture is unknown gets max(SD 1.5's, file size / 4 bytes),
    SD 1.5 proportions and attention: a guess, said so."""
    from steady.models.detect import read_safetensors_header, shapes_of
    from steady.models.pickled import pickle_shapes

    if info.arch is None:
        total = max(sum(KNOWN_PARAMS["sd1"].values()), info.size_bytes // 4)
        scale = total / sum(KNOWN_PARAMS["sd1"].values())
        params = {c: int(n * scale) for c, n in KNOWN_PARAMS["sd1"].items()}
        return dataclasses.replace(footprint_for_arch("sd1", params=params, source="guessed from file size"),
                                   arch="unknown")
    base = footprint_for_arch(info.arch)
    if info.format in ("safetensors", "pickle"):
        path = Path(info.path)
        shapes = shapes_of(read_safetensors_header(path)) if info.format == "safetensors" else pickle_shapes(path)
        params = params_from_shapes(shapes, info.arch)
        att = _attention_from_unet_config(info.overrides.get("unet", {}), info.arch)
        return dataclasses.replace(base, params=params, attn_heads=att["heads"], attn_level=att["level"],
                                   source=f"{info.format} tensor shapes" if info.format == "pickle" else "safetensors header")
    folder = Path(info.path)
    params = {}
    for component, known in base.params.items():
        files = sorted((folder / component).glob("*.safetensors"))
        plain = [f for f in files if ".fp16." not in f.name] or files  # a variant is a copy, count one
        params[component] = (
            sum(math.prod(s) for f in plain for s in shapes_of(read_safetensors_header(f)).values()) if plain else known
        )
    unet_cfg = _read_json(folder / "unet" / "config.json")
    vae_cfg = _read_json(folder / "vae" / "config.json")
    att = _attention_from_unet_config(unet_cfg, info.arch)
    return dataclasses.replace(base, params=params, attn_heads=att["heads"], attn_level=att["level"],
                               vae_upcast=info.arch == "sdxl" and bool(vae_cfg.get("force_upcast", True)),
                               source="folder headers")


def with_kept_vae(fp: ModelFootprint) -> ModelFootprint:
    """The footprint of a model whose images use another VAE (``--vae``): steady.worker.vae builds
    that VAE from the model's own VAE config, so it has the same parameters, and keeps the model's
    own beside it (put back for an image that asks for none): one more VAE's weights, where the
    model's are ("vae_kept")."""
    return dataclasses.replace(fp, params={**fp.params, "vae_kept": fp.params.get("vae", 0)})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # detect.inspect_folder has already refused unreadable folders


# --- estimates ------------------------------------------------------------------------------
def estimate(fp: ModelFootprint, width: int, height: int, batch: int = 1, dtype: str = "float16", *,
             device_kind: str = "cuda", guidance: bool = True) -> MemoryEstimate:
    """Bytes one job needs, per part. Formulas and sources: docs/planner.md."""
    if dtype not in DTYPE_BYTES:
        raise BadInput("dtype", dtype, "must be one of " + ", ".join(DTYPE_BYTES))
    b = DTYPE_BYTES[dtype]
    vae_dtype = "float32" if fp.vae_upcast and dtype == "float16" else dtype
    vb = DTYPE_BYTES[vae_dtype]
    unet_batch = batch * (2 if guidance else 1)  # classifier-free guidance: uncond + cond in one call
    latent = (height // 8) * (width // 8)
    tokens = latent / 4**fp.attn_level
    unet_step = unet_batch * latent * b * UNET_MIB_PER_LATENT_PIXEL_BYTE * fp.unet_factor * MIB
    # Scores and softmax output live together: 2 x rows x tokens^2, rows = batch x heads.
    attention = 2 * unet_batch * fp.attn_heads * tokens**2 * b
    attention_sliced = 2 * max(1, fp.attn_heads // 2) * tokens**2 * b
    per_pixel = VAE_VALUES_PER_PIXEL_CUDA if device_kind == "cuda" else VAE_VALUES_PER_PIXEL_CPU
    one = per_pixel * width * height * vb
    tile_side = min(VAE_TILE, max(width, height))
    tiled = per_pixel * tile_side**2 * vb + TILE_VALUES_PER_PIXEL * width * height * vb
    return MemoryEstimate(
        width=width, height=height, batch=batch, dtype=dtype, device_kind=device_kind,
        weights={c: n * b for c, n in fp.params.items()}, vae_dtype=vae_dtype,
        vae_weights=fp.params.get("vae", 0) * vb, unet_step=int(unet_step), attention=int(attention),
        attention_sliced=int(attention_sliced), vae_decode=int(one * batch), vae_decode_one=int(one),
        vae_decode_tiled=int(min(tiled, one)), vae_attention=int(2 * latent**2 * vb),
    )


@dataclass(frozen=True)
class _Flags:
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False


@dataclass(frozen=True)
class _Peaks:
    vram: int
    ram: int


def _phases(est: MemoryEstimate, flags: _Flags, sdpa: bool) -> dict[str, int]:
    unet = est.unet_step + (0 if sdpa else est.attention_sliced if flags.attention_slicing else est.attention)
    if flags.vae_tiling:
        decode = est.vae_decode_tiled * (1 if flags.vae_slicing else est.batch)
    else:
        decode = est.vae_decode_one if flags.vae_slicing else est.vae_decode
    if not sdpa:
        decode += est.vae_attention * (1 if flags.vae_slicing else est.batch)
    # Upcasting replaces the VAE's weights with float32 ones for the decode.
    return {"unet": unet, "decode": decode + est.vae_weights - est.weights.get("vae", 0)}


def _peaks(est: MemoryEstimate, strategy: str, flags: _Flags, sdpa: bool) -> _Peaks:
    ph = _phases(est, flags, sdpa)
    w = est.weights
    if strategy == "cpu":
        # The load's own peak (steady.worker.tensorfile: one tensor at a time, straight to the
        # dtype) is the weights plus at most LOAD_OVERHEAD; the run's is the weights plus a phase.
        return _Peaks(0, RUNTIME_RAM_CPU + est.weights_total + max(max(ph.values()) + WORKSPACE, LOAD_OVERHEAD))
    if strategy in ("gpu", "gpu+vae-tiling"):
        vram = est.weights_total + max(ph.values())
    elif strategy == "model-offload":
        text = max((n for c, n in w.items() if c.startswith("text_encoder")), default=0)
        vram = max(w.get("unet", 0) + ph["unet"], w.get("vae", 0) + ph["decode"], text)
    else:
        vram = SEQUENTIAL_LAYER + max(ph.values())
    # Host RAM: our loader builds the whole pipeline on the CPU before moving it, and offloading
    # keeps every weight there, so all weights count on every GPU rung.
    return _Peaks(vram + WORKSPACE, RUNTIME_RAM_CUDA + est.weights_total)


def vram_budget(gpu: Gpu, platform: str) -> int:
    context = CUDA_CONTEXT_WINDOWS if platform == "win32" else CUDA_CONTEXT
    return max(0, gpu.vram_free - int(VRAM_SLACK * gpu.vram_total) - context)


def ram_budget(m: Machine) -> int:
    return max(0, m.ram_available - max(RAM_RESERVE_MIN, int(RAM_RESERVE_FRACTION * m.ram_total)))


def cpu_threads(m: Machine) -> int:
    """The physical cores this process may use, whatever the load: a CPU convolution's sums are
    split by thread, so another count changes a few pixel values by one, and the same request must
    give the same pixels on the same machine. The cost: an OpenMP thread whose core another process
    holds stalls the others at each barrier (much slower while the machine is busy, never wrong)."""
    return max(1, min(m.cpu_physical, m.cpu_usable))


# --- planning -------------------------------------------------------------------------------
_DESCRIBE = {
    "gpu": "everything on the GPU",
    "gpu+vae-tiling": "everything on the GPU, VAE decoded in tiles",
    "model-offload": "one model component at a time on the GPU (model CPU offload)",
    "sequential-offload": "one layer at a time on the GPU (sequential CPU offload; slow)",
    "cpu": "on the CPU",
}


@dataclass(frozen=True)
class _Job:
    fp: ModelFootprint
    width: int
    height: int
    batch: int
    guidance: bool
    sdpa: bool


def _applicable(job: _Job) -> _Flags:
    """Every thrifty flag that changes something for this job."""
    return _Flags(attention_slicing=not job.sdpa, vae_slicing=job.batch > 1,
                  vae_tiling=max(job.width, job.height) > VAE_TILE)


@dataclass(frozen=True)
class _Step:
    strategy: str
    flags: _Flags


def _steps(job: _Job, accel: bool) -> list[_Step]:
    """The ladder as steps; a step that would change nothing from the one before is dropped."""
    every = _applicable(job)
    if accel:
        raw = [_Step("gpu", _Flags()), _Step("gpu+vae-tiling", every), _Step("model-offload", _Flags()),
               _Step("model-offload", every), _Step("sequential-offload", every)]
    else:
        raw = [_Step("cpu", _Flags()), _Step("cpu", every)]
    out: list[_Step] = []
    for step in raw:
        same_as_before = out and out[-1] == step
        if not same_as_before and not (step.strategy == "gpu+vae-tiling" and step.flags == _Flags()):
            out.append(step)
    return out


def _make(job: _Job, device: str, dtype: str, step: _Step, budgets: _Peaks, threads: int | None) -> Plan:
    kind = "cpu" if device == "cpu" else "cuda"
    est = estimate(job.fp, job.width, job.height, job.batch, dtype, device_kind=kind, guidance=job.guidance)
    strategy, flags = step.strategy, step.flags
    p = _peaks(est, strategy, flags, job.sdpa)
    if device == "mps":  # unified memory: the GPU's share comes out of RAM
        p = _Peaks(p.vram, RUNTIME_RAM_CPU + p.vram)
    fits = p.vram <= budgets.vram and p.ram <= budgets.ram
    on = [n.replace("_", " ") for n, v in asdict(flags).items() if v]
    reason = (f"{_DESCRIBE[strategy]} in {dtype}" + (f" with {', '.join(on)}" if on else "")
              + (f", {threads} threads" if threads else "")
              + f": about {_gib(p.ram)} of {_gib(budgets.ram)} RAM"
              + (f" and {_gib(p.vram)} of {_gib(budgets.vram)} usable VRAM" if kind == "cuda" else ""))
    return Plan(device=device, dtype=dtype, strategy=strategy, attention_slicing=flags.attention_slicing,
                vae_slicing=flags.vae_slicing, vae_tiling=flags.vae_tiling, threads=threads, peak_vram=p.vram,
                peak_ram=p.ram, vram_budget=budgets.vram, ram_budget=budgets.ram, fits=fits, reason=reason,
                width=job.width, height=job.height, batch=job.batch, guidance=job.guidance, sdpa=job.sdpa,
                footprint=job.fp)


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _pick_gpu(m: Machine, device: str) -> Gpu | None:
    gpus = m.usable_gpus()
    if device == "auto":
        return max(gpus, key=lambda g: g.vram_free, default=None)
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        for g in gpus:
            if g.index == index:
                return g
        raise BadInput("device", device, f"no usable CUDA GPU {index} on this machine "
                       f"({len(gpus)} usable; is torch a CUDA build?)")
    return None


def candidates(fp: ModelFootprint, m: Machine, *, width: int, height: int, batch: int = 1, device: str = "auto",
               dtype: str = "auto", guidance: bool = True, sdpa: bool = True) -> list[Plan]:
    """Every plan considered, in ladder order, each marked fits or not. With device 'auto' the CPU
    is considered only when there is no usable GPU: on a machine with one, a job that the GPU
    cannot take is refused (naming what would fit) rather than run 20-50x slower unasked."""
    job = _Job(fp, width, height, batch, guidance, sdpa)
    ram = ram_budget(m)
    out: list[Plan] = []
    gpu = _pick_gpu(m, device)
    accel_dtype = dtype if dtype in ("float32", "bfloat16") else "float16"
    if gpu is not None:
        name = f"cuda:{gpu.index}" if gpu.index else "cuda"
        budgets = _Peaks(vram_budget(gpu, m.platform), ram)
        out += [_make(job, name, accel_dtype, s, budgets, None) for s in _steps(job, accel=True)]
    elif device == "mps" or (device == "auto" and m.mps):
        if not m.mps:
            raise BadInput("device", device, "Apple MPS is not available on this machine")
        # Unified memory: offloading to the CPU frees nothing, so only the all-on-GPU rungs.
        steps = [s for s in _steps(job, accel=True) if s.strategy in ("gpu", "gpu+vae-tiling")]
        out += [_make(job, "mps", accel_dtype, s, _Peaks(ram, ram), None) for s in steps]
    if device == "cpu" or (device == "auto" and not out):
        if dtype == "float16":
            raise BadInput("dtype", dtype, "float16 needs a GPU, and none is usable here; use float32 or bfloat16")
        # auto: bfloat16 alone where it is native (faster and half the memory); else float32 first,
        # bfloat16 (half the memory, slower) when float32 does not fit.
        for d in (["bfloat16"] if m.cpu_bf16 else ["float32", "bfloat16"]) if dtype == "auto" else [dtype]:
            plans = [_make(job, "cpu", d, s, _Peaks(0, ram), cpu_threads(m)) for s in _steps(job, accel=False)]
            if d == "bfloat16" and not m.cpu_bf16:  # still correct: torch converts inside each op
                plans = [dataclasses.replace(q, reason=q.reason + "; this CPU has no native bfloat16, so it runs "
                                             "slower than float32 would") for q in plans]
            fp32 = [q for q in out if q.device == "cpu" and q.dtype == "float32"]
            if d == "bfloat16" and fp32 and not any(q.fits for q in fp32):  # SDXL on 16 GB: say why
                need = min(q.peak_ram for q in fp32)
                plans = [dataclasses.replace(q, reason=q.reason + f"; float32 would need about {_gib(need)}, so "
                                             "bfloat16, which halves the weights") for q in plans]
            out += plans
    return out


def plan(fp: ModelFootprint, m: Machine, *, width: int, height: int, batch: int = 1, device: str = "auto",
         dtype: str = "auto", guidance: bool = True, sdpa: bool = True, vram_limit: int | None = None) -> Plan:
    """The fastest plan that fits, or InsufficientMemory saying what would fit. ``vram_limit``
    (config's vram_limit_gib): each GPU seen as that large at most, and a GPU plan carries it
    for the worker to cap torch's allocator with."""
    m = with_vram_limit(m, vram_limit)
    kw = dict(device=device, dtype=dtype, guidance=guidance, sdpa=sdpa)
    tried = candidates(fp, m, width=width, height=height, batch=batch, **kw)
    chosen = next((p for p in tried if p.fits), None)
    if chosen is None:
        raise _refusal(fp, m, tried, width, height, batch, kw)
    faster = [p for p in tried[: tried.index(chosen)] if p.strategy != chosen.strategy]
    if chosen.device.startswith("cuda"):
        chosen = dataclasses.replace(chosen, vram_limit=vram_limit)
    if not faster:
        return chosen
    f = faster[-1]
    short = f"{_gib(f.peak_vram)} VRAM" if f.peak_vram > f.vram_budget else f"{_gib(f.peak_ram)} RAM"
    return dataclasses.replace(chosen, reason=chosen.reason + f"; '{f.strategy}' would need about {short}")


def _fits(fp: ModelFootprint, m: Machine, width: int, height: int, batch: int, kw: dict[str, Any]) -> bool:
    return any(p.fits for p in candidates(fp, m, width=width, height=height, batch=batch, **kw))


def _smaller_sizes(width: int, height: int) -> list[Size]:
    """Same aspect ratio, the longer side down in steps of 64 to 256, sides multiples of 8."""
    long = max(width, height)
    out = []
    for side in range(long - 64, 255, -64):
        f = side / long
        out.append(Size(max(64, round(width * f / 8) * 8), max(64, round(height * f / 8) * 8)))
    return out


def _refusal(fp: ModelFootprint, m: Machine, tried: list[Plan], width: int, height: int, batch: int,
             kw: dict[str, Any]) -> InsufficientMemory:
    """Name the argument to change: fewer per batch (keeps the size), else a smaller size, else the model."""
    last = tried[-1]
    short_ram = last.peak_ram > last.ram_budget
    resource = "RAM" if short_ram else "VRAM"
    need, have = (last.peak_ram, last.ram_budget) if short_ram else (last.peak_vram, last.vram_budget)
    digits = 1 if f"{need / GIB:.1f}" != f"{have / GIB:.1f}" else 2
    why = (f"{width}x{height}, {batch} per batch, needs about {need / GIB:.{digits}f} GiB of {resource} even "
           f"with the thriftiest strategy ({last.strategy}, {last.dtype}); this machine has "
           f"{have / GIB:.{digits}f} GiB available; ")
    fits_batch = next((n for n in range(batch - 1, 0, -1) if _fits(fp, m, width, height, n, kw)), None)
    fits_at = next((z for z in _smaller_sizes(width, height) if _fits(fp, m, z.width, z.height, batch, kw)), None)
    common = dict(need=need, have=have, resource=resource, fits_at=fits_at, fits_batch=fits_batch)
    if fits_batch is not None:
        at = f", or at {fits_at.width}x{fits_at.height}" if fits_at else ""
        return InsufficientMemory("batch_size", batch, why + f"with {fits_batch} per batch it would fit{at}", **common)
    if fits_at is None and batch > 1:
        fits_at = next((z for z in _smaller_sizes(width, height) if _fits(fp, m, z.width, z.height, 1, kw)), None)
        common.update(fits_at=fits_at, fits_batch=1 if fits_at else None)
    if fits_at is not None:
        per = " with 1 per batch" if common["fits_batch"] == 1 else ""
        hint = f"at {fits_at.width}x{fits_at.height}{per} it would fit"
        return InsufficientMemory("width", width, why + hint, **common)
    weights = estimate(fp, 256, 256, 1, last.dtype).weights_total
    what = (f"the weights alone are {_gib(weights)} in {last.dtype}" if short_ram
            else "not even 256 px with one layer at a time on this GPU")
    cpu = last.device != "cpu" and _fits(fp, m, width, height, batch, {**kw, "device": "cpu"})
    return InsufficientMemory("model", fp.arch, why + f"no smaller size fits: {what}; " + (
        "on the CPU (--device cpu, much slower) it would fit" if cpu else "use a smaller model or free memory"), **common)


def next_thriftier(p: Plan) -> Plan | None:
    """The next GPU rung after `p` (for the out-of-memory retry), whether or not the estimate says
    it fits: the estimate already missed once. None after the last rung, and on the CPU."""
    if p.strategy not in GPU_LADDER:
        return None
    job = _Job(p.footprint, p.width, p.height, p.batch, p.guidance, p.sdpa)
    steps = _steps(job, accel=True)
    current = _Flags(p.attention_slicing, p.vae_slicing, p.vae_tiling)
    index = next((i for i, s in enumerate(steps) if s == _Step(p.strategy, current)), None)
    if index is None:  # a hand-made plan: go on from the last step before its strategy's rung
        order = GPU_LADDER.index(p.strategy)
        index = max([i for i, s in enumerate(steps) if GPU_LADDER.index(s.strategy) <= order], default=-1)
    if index + 1 >= len(steps):
        return None
    budgets = _Peaks(p.vram_budget, p.ram_budget)
    return dataclasses.replace(_make(job, p.device, p.dtype, steps[index + 1], budgets, p.threads), vram_limit=p.vram_limit)
