"""Upscale requests, checked and planned without torch: which upscaler, which images, what tiles.

    resolved = check_upscale(UpscaleRequest(("a.png",), upscaler="4x-UltraSharp", scale=4), settings())
    for source, tiles in zip(resolved.sources, resolved.plans):
        print(tiles.describe())      # "4x upscale of 1024x1024 on cpu: 36 tiles of 192 px (overlap 16) ..."

Upscalers are named as A1111 names them: "Lanczos" and "Nearest" (always there, no file),
"None" (A1111's "no upscaling": the API's extras returns the image as it is), and every
``.safetensors``/``.pth``/``.pt``/``.ckpt`` file in ``upscaler_dir`` (an A1111 ``models/ESRGAN``
folder works as it is) by its file name without the suffix; a ``.safetensors`` file wins over a
pickle of the same name. A path to a file works too.

The tile size is planned here: the largest of TILE_SIDES whose estimated peak (one tile's
activations, the model's weights, and the output canvas in RAM) fits what the device has free;
steady.worker.upscale runs the tiles and blends their overlap. The estimate is deliberately
generous (transformer upscalers such as SwinIR, HAT or DAT keep far more values per input pixel
than ESRGAN's convolutions): docs/upscalers.md has the figures.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steady.config import Settings
from steady.errors import BadInput, check_text
from steady.params import MAX_PATH_CHARS, ImageParams

BUILTIN_UPSCALERS = ("None", "Lanczos", "Nearest")
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")  # in the order a name is looked for
MAX_SCALE = 8.0
MAX_SOURCE_PIXELS = 4096 * 4096
MAX_OUTPUT_SIDE = 16384
MAX_OUTPUT_PIXELS = 8192 * 8192
TILE_SIDES = (512, 384, 256, 192, 128, 96, 64, 48, 32)
MAX_CPU_TILE = 256  # on the CPU bigger tiles only cost memory: the work per pixel is the same
MAX_IMAGES = 1000
# Estimated values alive while one tile runs, per pixel of the tile's input and per pixel of its
# output. ESRGAN (RRDBNet, 64 features) keeps about 500 per input pixel in its dense blocks and
# about 200 per output pixel in its upsampling convolutions; window-attention models (SwinIR, HAT,
# DAT) keep attention maps and wider features at the input's resolution, so the input figure is
# four times ESRGAN's.
VALUES_PER_INPUT_PIXEL = 2048
VALUES_PER_OUTPUT_PIXEL = 256
CANVAS_BYTES_PER_OUTPUT_PIXEL = 28  # float32 sum (3) and weight (1), uint8 result, resize copies
_SCALE_IN_NAME = re.compile(r"(?:^|[^0-9a-z])(?:([1-8])x|x([1-8]))(?![0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class UpscaleRequest:
    """What `steady upscale`, the page's "upscale" and A1111's extras ask for."""

    images: tuple[str, ...]  # source image files
    upscaler: str = "Lanczos"
    scale: float = 4.0
    tile: int | None = None  # tile side in input pixels; None: the planner's; 0: the whole image at once
    device: str = "auto"
    dtype: str = "auto"
    out_dir: str | None = None

    def validate(self) -> UpscaleRequest:
        if not self.images:
            raise BadInput("images", "", "give at least one image to upscale")
        if len(self.images) > MAX_IMAGES:
            raise BadInput("images", len(self.images), f"at most {MAX_IMAGES} images per request")
        for path in self.images:
            if not isinstance(path, str) or len(path) > MAX_PATH_CHARS:
                raise BadInput("images", str(path)[:80], "must be a file path")
            check_text("images", path)
        if not isinstance(self.upscaler, str) or not self.upscaler.strip() or len(self.upscaler) > MAX_PATH_CHARS:
            raise BadInput("upscaler", self.upscaler, "must name an upscaler (steady upscalers lists them)")
        check_text("upscaler", self.upscaler)
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise BadInput("scale", self.scale, "must be a number")
        if not 1.0 <= self.scale <= MAX_SCALE:
            raise BadInput("scale", self.scale, f"must be between 1 and {MAX_SCALE:g}")
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int)
                                      or not (self.tile == 0 or 32 <= self.tile <= 4096)):  # fmt: skip
            raise BadInput("tile", self.tile, "must be 0 (no tiles) or a side between 32 and 4096 pixels")
        return dataclasses.replace(self, scale=float(self.scale))


@dataclass(frozen=True)
class Upscaler:
    """One upscaler as /sdapi/v1/upscalers lists it."""

    name: str
    path: str = ""  # "" for the built-in ones
    scale: int = 4  # the model's own scale, as its name says (A1111 reads it the same way); 4 when it does not

    @property
    def builtin(self) -> bool:
        return not self.path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def name_scale(name: str) -> int:
    """A model's own scale from its file name ("4x-UltraSharp", "RealESRGAN_x2plus"); 4 otherwise."""
    match = _SCALE_IN_NAME.search(name)
    return int(match.group(1) or match.group(2)) if match else 4


# A1111's names for the upscalers it ships code for, and the files they load (A1111 downloads them
# into models/RealESRGAN, models/ESRGAN, models/SwinIR): a client asking for "R-ESRGAN 4x+" gets
# RealESRGAN_x4plus when that file is here. Nothing is downloaded.
A1111_NAMES = {
    "r-esrgan 4x+": "RealESRGAN_x4plus", "r-esrgan 4x+ anime6b": "RealESRGAN_x4plus_anime_6B",
    "r-esrgan 2x+": "RealESRGAN_x2plus", "r-esrgan general 4xv3": "realesr-general-x4v3",
    "r-esrgan general wdn 4xv3": "realesr-general-wdn-x4v3", "r-esrgan animevideo": "realesr-animevideov3",
    "esrgan_4x": "ESRGAN_4x", "swinir 4x": "SwinIR_4x",
}  # fmt: skip
# Where A1111 keeps the other upscalers' files, beside models/ESRGAN.
A1111_SIBLINGS = ("RealESRGAN", "SwinIR", "HAT", "DAT")


def upscaler_dirs(cfg: Settings) -> list[Path]:
    """``upscaler_dir``, and when it is an A1111 ``models/ESRGAN`` folder, its siblings that hold
    upscalers too (models/RealESRGAN, models/SwinIR, ...)."""
    folder = cfg.upscaler_dir
    dirs = [folder]
    if folder.name == "ESRGAN":
        dirs += [folder.parent / name for name in A1111_SIBLINGS if (folder.parent / name).is_dir()]
    return dirs


def list_upscalers(cfg: Settings) -> list[Upscaler]:
    """The built-in upscalers, then the model files in ``upscaler_dirs`` by name."""
    found: dict[str, Upscaler] = {}
    files = [p for folder in upscaler_dirs(cfg) if folder.is_dir() for p in folder.rglob("*")
             if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES]  # fmt: skip
    files.sort(key=lambda p: (p.stem.lower(), MODEL_SUFFIXES.index(p.suffix.lower()), str(p)))
    for p in files:
        found.setdefault(p.stem.lower(), Upscaler(p.stem, str(p), name_scale(p.stem)))
    return [Upscaler(name) for name in BUILTIN_UPSCALERS] + sorted(found.values(), key=lambda u: u.name.lower())


def find_upscaler(name: str, cfg: Settings) -> Upscaler:
    """The upscaler called ``name`` (any case), or the model file at that path; BadInput naming
    `upscaler` with what there is otherwise."""
    known = list_upscalers(cfg)
    wanted = name.strip().lower()
    for key in (wanted, A1111_NAMES.get(wanted, "").lower()):
        for u in known:
            if key and u.name.lower() == key:
                return u
    p = Path(name).expanduser()
    if p.suffix.lower() in MODEL_SUFFIXES and p.is_file():
        return Upscaler(p.stem, str(p.resolve()), name_scale(p.stem))
    if p.suffix.lower() in MODEL_SUFFIXES or "/" in name:
        raise BadInput("upscaler", name, "no such file")
    names = ", ".join(u.name for u in known)
    raise BadInput("upscaler", name, f"unknown upscaler; there are: {names} (model files go in {cfg.upscaler_dir})")


@dataclass(frozen=True)
class TilePlan:
    """How one image is upscaled: tile side and overlap (input pixels), how many tiles, and why."""

    tile: int  # 0: the whole image at once (a built-in resampler, or --tile 0)
    overlap: int
    tiles: int
    passes: int
    device: str
    dtype: str
    peak_bytes: int  # the estimate for the device the model runs on
    budget_bytes: int  # what that device has for it
    ram_bytes: int  # the output canvas and resize copies, in RAM whatever the device
    text: str = ""

    def describe(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TilePlan:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def passes(scale: float, native: int) -> int:
    """Runs of a ``native``x model that reach ``scale`` (A1111: at most 3); same rule as the worker."""
    if native <= 1:
        return 1
    return max(1, min(3, math.ceil(math.log(max(scale, 1.0)) / math.log(native) - 1e-9)))


def tile_count(width: int, height: int, tile: int, overlap: int) -> int:
    def along(size: int) -> int:
        if tile <= 0 or size <= tile:
            return 1
        stride = max(1, tile - overlap)
        return len(range(0, size - tile, stride)) + 1

    return along(width) * along(height)


def tile_peak(tile: int, native: int, value_bytes: int, weights_bytes: int) -> int:
    """Estimated peak bytes on the model's device while one ``tile``-pixel tile runs."""
    pixels = tile * tile
    return weights_bytes + value_bytes * (VALUES_PER_INPUT_PIXEL * pixels + VALUES_PER_OUTPUT_PIXEL * pixels * native**2)


def overlap_for(tile: int) -> int:
    """Pixels neighbouring tiles share: 8 for small tiles (A1111's ESRGAN default), 16 from 128 px, 32 from 384."""
    return 32 if tile >= 384 else 16 if tile >= 128 else 8


def plan_tiles(width: int, height: int, scale: float, upscaler: Upscaler, *, device: str, dtype: str,
               budget_bytes: int, ram_budget_bytes: int, weights_bytes: int = 0, tile: int | None = None) -> TilePlan:  # fmt: skip
    """The tiles for a ``scale`` upscale of a ``width`` x ``height`` image with ``upscaler`` on
    ``device``: the largest tile side whose estimated peak fits ``budget_bytes`` (``tile`` given:
    that one, checked). BadInput naming `tile` (or `scale`) when nothing fits."""
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    ram = CANVAS_BYTES_PER_OUTPUT_PIXEL * out_w * out_h
    where = f"{scale:g}x upscale of {width}x{height} to {out_w}x{out_h} with {upscaler.name}"
    if upscaler.builtin:
        if ram > ram_budget_bytes:
            raise BadInput("scale", scale, f"the {out_w}x{out_h} result needs about {_gib(ram)} of RAM; "
                           f"{_gib(ram_budget_bytes)} is free")  # fmt: skip
        return TilePlan(0, 0, 1, 1, "cpu", "uint8", ram, ram_budget_bytes, ram, f"{where}: one resample in RAM")
    native = upscaler.scale
    runs = passes(scale, native)
    # The last pass is the largest: its input is the previous passes' output.
    last_w, last_h = width * native ** (runs - 1), height * native ** (runs - 1)
    ram += CANVAS_BYTES_PER_OUTPUT_PIXEL * last_w * last_h * native**2  # that pass's own canvas, before the resize
    value_bytes = 2 if dtype in ("float16", "bfloat16") else 4
    on_cpu = device == "cpu"
    need_cpu = ram if on_cpu else 0
    largest = max(last_w, last_h)
    if tile is not None:
        chosen = tile
    else:
        cap = MAX_CPU_TILE if on_cpu else TILE_SIDES[0]
        fitting = [t for t in TILE_SIDES if t <= cap and tile_peak(t, native, value_bytes, weights_bytes) + need_cpu <= budget_bytes]
        if not fitting:
            smallest = TILE_SIDES[-1]
            need = tile_peak(smallest, native, value_bytes, weights_bytes) + need_cpu
            raise BadInput("tile", smallest, f"even {smallest}-pixel tiles need about {_gib(need)} on {device} "
                           f"for the {where}; {_gib(budget_bytes)} is free")  # fmt: skip
        chosen = fitting[0]
        if chosen >= largest:  # the whole image is one tile: no seams at all
            chosen = 0
    side = largest if chosen == 0 else min(chosen, largest)
    peak = tile_peak(side, native, value_bytes, weights_bytes) + need_cpu
    if peak > budget_bytes:
        raise BadInput("tile", chosen, f"needs about {_gib(peak)} on {device} for the {where}; {_gib(budget_bytes)} "
                       f"is free: give a smaller --tile, or leave it out to let the planner choose")  # fmt: skip
    if not on_cpu and ram > ram_budget_bytes:
        raise BadInput("scale", scale, f"the result needs about {_gib(ram)} of RAM; {_gib(ram_budget_bytes)} is free")
    overlap = overlap_for(chosen) if chosen else 0
    count = sum(tile_count(width * native**p, height * native**p, chosen, overlap) for p in range(runs))
    shape = "the whole image in one tile" if chosen == 0 else f"{count} tiles of {chosen} px (overlap {overlap})"
    text = (f"{where} on {device} ({dtype}): {shape}{f' over {runs} passes' if runs > 1 else ''}, "
            f"about {_gib(peak)} at its peak of {_gib(budget_bytes)} free")  # fmt: skip
    return TilePlan(chosen, overlap, count, runs, device, dtype, peak, budget_bytes, ram, text)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:.0f} MiB"


@dataclass(frozen=True)
class SourceImage:
    """An image to upscale: its file, content hash and size, and what made it (when known)."""

    path: str
    sha256: str
    width: int
    height: int
    image_id: int | None = None  # its catalog row (lineage), when it has one
    params: ImageParams | None = None  # from its catalog row or its own PNG
    parameters_text: str = ""  # A1111's text from a PNG steady did not make, kept as it is


def read_source(path: str, argument: str = "images") -> tuple[int, int]:
    """The size of the image at ``path``, decoded once to prove it is whole; BadInput naming
    ``argument`` when it is missing, not an image, a decompression bomb or too large."""
    from PIL import Image

    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(argument, path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                size = im.size
                if size[0] * size[1] > MAX_SOURCE_PIXELS:
                    raise BadInput(argument, path, f"is {size[0]}x{size[1]}; at most {MAX_SOURCE_PIXELS:,} pixels "
                                   "are upscaled")  # fmt: skip
                im.load()
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInput(argument, path, f"is a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInput(argument, path, f"is not an image this studio reads ({type(exc).__name__}: {exc})") from exc
    return size


def source_image(path: str, cfg: Settings, catalog: Any = None) -> SourceImage:
    """The source at ``path``: checked, hashed, and found in the catalog (by content) when it is there."""
    from steady.catalog.db import file_sha256
    from steady.catalog.lineage import find_image
    from steady.images.pngmeta import read_png_info

    width, height = read_source(path)
    resolved = str(Path(path).expanduser().resolve())
    digest = file_sha256(resolved)
    image_id, params = find_image(catalog, digest, resolved) if catalog is not None else (None, None)
    text = ""
    if params is None:
        info = read_png_info(resolved) if resolved.lower().endswith(".png") else None
        if info is not None:
            params = info.image_params()
            text = info.parameters_text if params is None else ""
    return SourceImage(resolved, digest, width, height, image_id, params, text)


@dataclass(frozen=True)
class ResolvedUpscale:
    """A checked upscale request: one source, plan and output parameters per image."""

    request: UpscaleRequest
    upscaler: Upscaler
    upscaler_hash: str  # A1111-style short sha256 of the model file ("" for the built-ins)
    device: str
    dtype: str
    out_dir: Path
    sources: tuple[SourceImage, ...]
    plans: tuple[TilePlan, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def image_params(self, index: int) -> ImageParams:
        """What upscaled image ``index`` records: its source's parameters (prompt, seed, model) at
        the new size, and what the upscale was (``extra["postprocess"]``, lineage included)."""
        from steady.version import __version__

        src, plan = self.sources[index], self.plans[index]
        width, height = max(1, round(src.width * self.request.scale)), max(1, round(src.height * self.request.scale))
        base = src.params or ImageParams(prompt="", negative_prompt="", steps=0, cfg_scale=0.0, width=src.width,
                                         height=src.height, seed=0, sampler="", clip_skip=1, model_name="",
                                         model_hash="", model_arch="", device="", dtype="")  # fmt: skip
        post = {
            "upscaler": self.upscaler.name, "upscaler_hash": self.upscaler_hash, "upscale_by": self.request.scale,
            "upscaler_path": self.upscaler.path, "tile": plan.tile, "overlap": plan.overlap, "tiles": plan.tiles,
            "source_path": src.path, "source_hash": src.sha256, "source_image_id": src.image_id,
            "source_width": src.width, "source_height": src.height, "source_device": base.device,
            "source_dtype": base.dtype,
        }  # fmt: skip
        if src.parameters_text:
            post["source_parameters"] = src.parameters_text
        extra = {k: v for k, v in base.extra.items() if k not in ("threads", "warnings", "postprocess")}
        return dataclasses.replace(base, width=width, height=height, device=plan.device, dtype=plan.dtype,
                                   steady_version=__version__, extra={**extra, "postprocess": post})  # fmt: skip


def upscale_dtype(device: str, requested: str) -> str:
    """float16 on a GPU, float32 on the CPU (an upscaler's few layers gain little from bfloat16
    there, and some architectures do not support it), unless asked otherwise."""
    if requested != "auto":
        return requested
    return "float32" if device == "cpu" else "float16"


def check_upscale(request: UpscaleRequest, cfg: Settings, catalog: Any = None, gpus: list[Any] | None = None) -> ResolvedUpscale:
    """Validate ``request``, find its upscaler and images, and plan each image's tiles. BadInput
    (naming the argument) before anything is written."""
    from steady.models.hashing import short_hash
    from steady.params import DEVICES, DTYPES
    from steady.request.check import prepare_out_dir
    from steady.request.devices import choose_device
    from steady.request.machine import probe_machine, with_vram_limit
    from steady.request.planner import _pick_gpu, ram_budget, vram_budget

    request = request.validate()
    upscaler = find_upscaler(request.upscaler, cfg)
    if upscaler.name == "None":
        raise BadInput("upscaler", request.upscaler, "does no upscaling; choose Lanczos, Nearest or a model")
    if request.device not in DEVICES and not request.device.startswith("cuda:"):
        raise BadInput("device", request.device, "must be one of " + ", ".join(DEVICES))
    if request.dtype not in DTYPES:
        raise BadInput("dtype", request.dtype, "must be one of " + ", ".join(DTYPES))
    sources = tuple(source_image(p, cfg, catalog) for p in request.images)
    for src in sources:
        w, h = round(src.width * request.scale), round(src.height * request.scale)
        if max(w, h) > MAX_OUTPUT_SIDE or w * h > MAX_OUTPUT_PIXELS:
            raise BadInput("scale", request.scale, f"{src.path} would be {w}x{h}; at most {MAX_OUTPUT_SIDE} px a "
                           f"side and {MAX_OUTPUT_PIXELS:,} pixels are written")  # fmt: skip
    device = "cpu" if upscaler.builtin else choose_device(request.device)
    dtype = "uint8" if upscaler.builtin else upscale_dtype(device, request.dtype)
    machine = with_vram_limit(probe_machine(gpus=gpus, cpu_sample_s=0.0, probe_gpus=device != "cpu"), cfg.vram_limit)
    ram = ram_budget(machine)
    budget = ram
    if device.startswith("cuda"):
        gpu = _pick_gpu(machine, device)
        budget = vram_budget(gpu, machine.platform) if gpu is not None else 0
    weights = Path(upscaler.path).stat().st_size if upscaler.path else 0
    if weights and dtype in ("float16", "bfloat16"):
        weights //= 2
    plans = tuple(plan_tiles(s.width, s.height, request.scale, upscaler, device=device, dtype=dtype,
                             budget_bytes=budget, ram_budget_bytes=ram, weights_bytes=weights, tile=request.tile)
                  for s in sources)  # fmt: skip
    out_dir = Path(request.out_dir).expanduser() if request.out_dir else cfg.outputs_dir / _dt.date.today().isoformat()
    prepare_out_dir(out_dir, needed_bytes=sum(round(s.width * request.scale) * round(s.height * request.scale) * 3
                                              for s in sources))  # fmt: skip
    digest = short_hash(upscaler.path, cfg) if upscaler.path else ""
    return ResolvedUpscale(request, upscaler, digest, device, dtype, out_dir, sources, plans)
