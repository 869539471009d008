"""Upscalers in the worker: super-resolution models through spandrel, run in tiles; Lanczos and nearest.

    model = load_upscaler("~/webui/models/ESRGAN/4x-UltraSharp.safetensors")  # spandrel reads the tensors
    big = upscale(image, model, scale=4, tile=192)       # a PIL image in, a PIL image out
    big = upscale(image, "lanczos", scale=2)             # no file: "lanczos" or "nearest"

A model runs on tiles of ``tile`` input pixels that overlap by ``overlap`` pixels; each tile's
output is weighted by a ramp across the overlap and the weighted tiles are summed and divided by
the summed weights, so no seam shows where tiles meet, and one tile's activations (not the whole
image's) are what the model's memory is. steady.request.upscale picks the tile size for the
memory there is (torch-free, before the worker starts) and says so. A model whose own scale is
below the one asked for runs again on its output (at most MAX_PASSES times, as A1111 does); the
result is then resized with Lanczos to exactly ``round(side * scale)``.

Files: ``.safetensors`` (read with safetensors), ``.pth``/``.pt``/``.ckpt`` with
``torch.load(weights_only=True)`` only; spandrel identifies the architecture from the state dict
(ESRGAN and RealESRGAN's RRDBNet, RealESRGAN's Compact SRVGG, SwinIR, HAT, DAT, OmniSR, SPAN,
...). spandrel is imported here only, and only when a model file is used.

The upscale job's steps (``upscale_image``, called by steady.worker.main for a RenderImage whose
params carry ``extra["postprocess"]``):

    1 load     the upscaler, unless the one held is the same file on the same device and dtype
    2 read     the source image (RGB)
    3 upscale  tiled, with progress (tiles done) and a cancel check between tiles
    4 write    the PNG, atomically, with the source's parameters and A1111's postprocessing text
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.errors import BadInput

BUILTIN = ("lanczos", "nearest")
MAX_PASSES = 3
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt")


@dataclass
class HeldUpscaler:
    """The upscaler the worker keeps between images (one at most)."""

    model: Any = None  # spandrel's ImageModelDescriptor
    key: tuple[str, str, str] | None = None  # (path, device, dtype)

    def drop(self) -> None:
        self.model = self.key = None


class Interrupted(Exception):
    """The upscale was cancelled between two tiles."""


def spandrel_module() -> Any:
    """spandrel, imported. spandrel imports torchvision for two architectures that are not upscalers
    (RestoreFormer face restoration, LaMa inpainting); where torchvision is missing or does not
    work with this torch (PyPI's CUDA build of torchvision beside a CPU build of torch), spandrel
    is imported with a stand-in for those two imports only, which fails if either of those models
    is ever run, and the stand-in is removed again so nothing else sees it."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        return importlib.import_module("spandrel")
    except ModuleNotFoundError as exc:
        if exc.name == "spandrel":
            raise BadInput("upscaler", "spandrel", "is not installed: pip install 'steady[upscalers]' "
                           "(or pip install spandrel)") from exc  # fmt: skip
        if exc.name is None or not exc.name.startswith("torchvision"):
            raise
    except (OSError, RuntimeError, AttributeError):  # a torchvision that cannot load its operators
        pass
    _forget("spandrel")
    _forget("torchvision")
    with _torchvision_stand_in():
        module = importlib.import_module("spandrel")
    return module


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise BadInput("upscaler", "torchvision", "this model needs a torchvision built for the installed torch")

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.normalize = unavailable  # type: ignore[attr-defined]
    functional.rotate = unavailable  # type: ignore[attr-defined]
    functional.InterpolationMode = types.SimpleNamespace(BILINEAR="bilinear", NEAREST="nearest")  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    root = types.ModuleType("torchvision")
    root.transforms = transforms  # type: ignore[attr-defined]
    stand_ins = {"torchvision": root, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def read_state_dict(path: str) -> dict[str, Any]:
    """The tensors of an upscaler file: safetensors, or a pickle through torch.load(weights_only=True).
    BadInput naming `upscaler` when the file cannot be read as either."""
    import torch

    p = Path(path)
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p), device="cpu")
        if p.suffix.lower() in PICKLE_SUFFIXES:
            data = torch.load(str(p), map_location="cpu", weights_only=True)
        else:
            raise BadInput("upscaler", str(p), "must be a .safetensors, .pth, .pt or .ckpt file")
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error is the file's fault: one line naming it
        raise BadInput("upscaler", str(p), f"cannot be read as {p.suffix} weights ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc  # fmt: skip
    # Pickled checkpoints often nest the weights (BasicSR's "params_ema"/"params", Lightning's "state_dict").
    for key in ("params_ema", "params", "state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict) and data[key]:
            if all(isinstance(v, torch.Tensor) for v in data[key].values()):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise BadInput("upscaler", str(p), "holds no tensors by name (not a model's state dict)")
    return data


def load_upscaler(path: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """spandrel's ImageModelDescriptor for the file at ``path``, on ``device`` in ``dtype`` (float16
    falls back to float32 when the architecture does not support it), in eval mode. BadInput naming
    `upscaler` when spandrel cannot identify it, or it is not an RGB image-to-image model."""
    import torch

    spandrel = spandrel_module()
    state = read_state_dict(path)
    try:
        model = spandrel.ModelLoader(device="cpu").load_from_state_dict(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError as exc:
        raise BadInput("upscaler", path, "is not a model spandrel can identify (ESRGAN, RealESRGAN, SwinIR, HAT, "
                       "DAT, ... are); is it an upscaler?") from exc  # fmt: skip
    except (KeyError, RuntimeError, ValueError, AssertionError, TypeError, IndexError) as exc:
        raise BadInput("upscaler", path, f"looks like a {type(exc).__name__} to spandrel's loader: {exc}") from exc
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise BadInput("upscaler", path, f"is a {model.architecture.name} model that needs a mask; not an upscaler")
    if model.input_channels != 3 or model.output_channels != 3:
        raise BadInput("upscaler", path, f"takes {model.input_channels} and gives {model.output_channels} channels; "
                       "only RGB models are used")  # fmt: skip
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    if (torch_dtype is torch.float16 and not model.supports_half) or (
        torch_dtype is torch.bfloat16 and not model.supports_bfloat16
    ):
        torch_dtype = torch.float32
    model.to(torch.device(device)).to(torch_dtype)
    model.eval()
    return model


def held_upscaler(held: HeldUpscaler, path: str, device: str, dtype: str) -> float:
    """1. The upscaler in ``held`` (loaded unless it is there); the seconds a load took (0: held)."""
    key = (path, device, dtype)
    if held.model is not None and held.key == key:
        return 0.0
    held.drop()
    t0 = time.perf_counter()
    held.model = load_upscaler(path, device, dtype)
    held.key = key
    return time.perf_counter() - t0


def target_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size a ``scale`` upscale of ``width`` x ``height`` gives (A1111's rounding)."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def upscale(image: Any, model: Any, scale: float, tile: int = 0, overlap: int = 16,
            on_tile: Callable[[int, int], bool] | None = None) -> Any:  # fmt: skip
    """``image`` (PIL) enlarged ``scale`` times by ``model``: a spandrel ImageModelDescriptor (see
    ``load_upscaler``) or the name of a resampling filter, "lanczos" or "nearest". ``tile``: tile
    side in input pixels (0: the whole image at once); ``overlap``: pixels shared by neighbouring
    tiles. ``on_tile(done, total)`` is called after each tile; returning False stops (Interrupted).
    The hires fix calls this with the first pass's image."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = target_size(image.width, image.height, scale)
    overlap = max(0, min(overlap, tile // 4)) if tile > 0 else 0  # a stride of at least 3/4 of a tile
    if isinstance(model, str):
        name = model.lower()
        if name not in BUILTIN:
            raise BadInput("upscaler", model, "must be lanczos, nearest or a loaded model")
        return image.resize((width, height), Image.Resampling.LANCZOS if name == "lanczos" else Image.Resampling.NEAREST)
    passes = passes_needed(scale, model.scale)
    total = sum(len(tile_boxes(*_pass_size(image.size, model.scale, p), tile, overlap)) for p in range(passes))
    done = 0

    def counted(_: int, __: int) -> bool:
        nonlocal done
        done += 1
        return on_tile(done, total) if on_tile is not None else True

    current = image
    for _ in range(passes):
        current = _run_tiled(current, model, tile, overlap, counted)
    if current.size != (width, height):
        current = current.resize((width, height), Image.Resampling.LANCZOS)
    return current


def passes_needed(scale: float, native: int) -> int:
    """How many times a ``native``x model runs to reach ``scale`` (A1111: until it is reached, at
    most MAX_PASSES times); a 1x model (a denoiser, say) runs once."""
    if native <= 1:
        return 1
    return max(1, min(MAX_PASSES, math.ceil(math.log(max(scale, 1.0)) / math.log(native) - 1e-9)))


def _pass_size(size: tuple[int, int], native: int, index: int) -> tuple[int, int]:
    return size[0] * native**index, size[1] * native**index


def tile_boxes(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tiles (left, top, right, bottom) covering a ``width`` x ``height`` image: ``tile`` pixels
    a side (0 or larger than the image: one tile), neighbours sharing ``overlap`` pixels."""

    def starts(size: int) -> list[int]:
        if tile <= 0 or size <= tile:
            return [0]
        stride = max(1, tile - overlap)
        points = list(range(0, size - tile, stride))
        return points + [size - tile]

    side_w = width if tile <= 0 else min(tile, width)
    side_h = height if tile <= 0 else min(tile, height)
    return [(x, y, x + side_w, y + side_h) for y in starts(height) for x in starts(width)]


def _ramp(length: int, fade_start: int, fade_end: int) -> Any:
    """Weights along one side of a tile's output: rising over ``fade_start`` pixels, falling over
    the last ``fade_end`` (0 where the tile meets the image's edge: no fade there)."""
    import torch

    w = torch.ones(length)
    if fade_start > 0:
        w[:fade_start] = (torch.arange(fade_start) + 0.5) / fade_start
    if fade_end > 0:
        w[length - fade_end:] = torch.minimum(w[length - fade_end:], (torch.arange(fade_end, 0, -1) - 0.5) / fade_end)
    return w


def _run_tiled(image: Any, model: Any, tile: int, overlap: int, on_tile: Callable[[int, int], bool]) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    s = int(model.scale)
    device, dtype = model.device, model.dtype
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).unsqueeze(0)
    _, _, h, w = pixels.shape
    boxes = tile_boxes(w, h, tile, overlap)
    out = torch.zeros(3, h * s, w * s, dtype=torch.float32)
    weights = torch.zeros(1, h * s, w * s, dtype=torch.float32)
    with torch.inference_mode():
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            part = pixels[:, :, y0:y1, x0:x1].to(device=device, dtype=dtype) / 255.0
            result = model(part).float().clamp_(0, 1).cpu()[0]
            del part
            fade = overlap * s
            wy = _ramp((y1 - y0) * s, fade if y0 > 0 else 0, fade if y1 < h else 0)
            wx = _ramp((x1 - x0) * s, fade if x0 > 0 else 0, fade if x1 < w else 0)
            weight = wy[:, None] * wx[None, :]
            out[:, y0 * s:y1 * s, x0 * s:x1 * s] += result * weight
            weights[:, y0 * s:y1 * s, x0 * s:x1 * s] += weight
            del result, weight
            if not on_tile(i + 1, len(boxes)):
                raise Interrupted()
    out /= weights.clamp_(min=1e-8)
    del weights
    array = out.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array, "RGB")


class PeakRss:
    """While in its ``with`` block, samples the process's resident bytes every ``every`` seconds
    in a thread; ``peak`` is the most it saw."""

    def __init__(self, process: Any, every: float = 0.01):
        import threading

        self.process, self.every, self.peak = process, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-upscale-rss", daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def is_upscale(params: Any) -> bool:
    """Whether a RenderImage's params ask for an upscale (steady.jobs.upscale) instead of a generation."""
    return "postprocess" in params.extra


def upscale_image(job: Any, held: HeldUpscaler, send: Callable[[object], None], cancelled: Callable[[], bool]) -> Any:
    """One upscale job's image, as numbered steps (see the module's docstring): ImageDone or Failure."""
    import psutil
    import torch
    from PIL import Image

    from steady.errors import SteadyError
    from steady.jobs.protocol import Failure, ImageDone, Progress
    from steady.images.pngmeta import write_png as write  # recipe.write itself (the recipe reaches this module through the hires fix)

    post = job.params.extra["postprocess"]
    params, me = job.params, psutil.Process()
    cuda = params.device.startswith("cuda")
    try:
        # 1. Load the upscaler, unless it is held (a built-in resampler has nothing to load).
        load_s, model = 0.0, post["upscaler"].lower()
        if post.get("upscaler_path"):
            from steady.worker.pipeline import confirm_device

            confirm_device(params.device)
            load_s = held_upscaler(held, post["upscaler_path"], params.device, params.dtype)
            model = held.model
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started, peak_rss = time.perf_counter(), me.memory_info().rss
        watch = PeakRss(me)  # a tile's peak is inside the model's forward: sampled every 10 ms
        # 2. Read the source.
        with Image.open(post["source_path"]) as source:
            image = source.convert("RGB")
        last = [started]

        def on_tile(done: int, total: int) -> bool:
            nonlocal peak_rss
            now, rss = time.perf_counter(), me.memory_info().rss
            peak_rss = max(peak_rss, rss)
            send(Progress(job.run_id, job.index, job.n_images, done, total, now - last[0], rss,
                          torch.cuda.memory_allocated() if cuda else 0))  # fmt: skip
            last[0] = now
            return not cancelled()

        # 3. Upscale, tile by tile.
        with watch:
            big = upscale(image, model, float(post["upscale_by"]), int(post.get("tile") or 0),
                          int(post.get("overlap") or 0), on_tile)  # fmt: skip
        if big.size != (params.width, params.height):
            raise SteadyError(f"the upscale gave {big.size[0]}x{big.size[1]}, not {params.width}x{params.height}")
        peak_rss = max(peak_rss, watch.peak, me.memory_info().rss)
        seconds = time.perf_counter() - started
        # 4. Write atomically; the supervisor records the row when it hears of it.
        write(big, job.path, params)
        strategy = f"tiles {post['tile']}" if post.get("tile") else "whole image"
        return ImageDone(job.job_id, job.run_id, job.index, job.path, seconds, peak_rss,
                         torch.cuda.max_memory_allocated() if cuda else 0, load_s, strategy)  # fmt: skip
    except Interrupted:
        return Failure(job.job_id, job.index, "cancelled", "cancelled")
    except BadInput as exc:
        value = exc.value if isinstance(exc.value, (str, int, float, bool, type(None))) else str(exc.value)
        return Failure(job.job_id, job.index, "bad-input", str(exc), exc.argument, value, exc.why)
    except torch.OutOfMemoryError as exc:
        return Failure(job.job_id, job.index, "oom", f"out of memory upscaling with {post.get('tile')}-pixel tiles: "
                       f"give a smaller --tile ({str(exc).splitlines()[0]})")  # fmt: skip
    except SteadyError as exc:
        return Failure(job.job_id, job.index, "model", str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which fails the job
        return Failure(job.job_id, job.index, "error", f"{type(exc).__name__}: {exc}")
