"""PNG files with their generation parameters: write ours atomically, read anyone's.

Writing: every PNG carries two text chunks,
    parameters  A1111's text, so A1111/Forge/Civitai and image viewers show the settings;
    steady      JSON of ImageParams.to_dict(), the exact values to reproduce the image.
The file appears complete or not at all: a temp file in the same folder is written, flushed,
fsync'ed and renamed over the target (os.replace), then the folder is fsync'ed so the rename
itself survives a power cut. A crash leaves at worst a `.NAME.XXXXXXXX.tmp` that
steady.catalog.reconcile removes.

Reading: read_png_info() recognises our files, A1111 (and Forge, which writes the same text),
ComfyUI (`prompt` API graph, `workflow` UI graph) and InvokeAI (`invokeai_metadata`, legacy
`sd-metadata`). Damaged metadata never raises: what could be parsed comes back with warnings.

    python -c "from steady.images.pngmeta import read_png_info; print(read_png_info('x.png'))"
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from steady.errors import BadInput, OutputError
from steady.images import foreign, infotext
from steady.images.pngchunks import PNG_SIGNATURE, read_text_chunks_by_hand
from steady.params import ImageParams

SOURCES = ("steady", "a1111", "comfyui", "invokeai", "none")

# Temp files are hidden, end in .tmp and carry 8 hex digits, so that reconcile can delete
# ours without touching anything else a user keeps in the outputs folder.
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")

# Chunks whose presence means we already have what we need without decoding the pixels.
_KNOWN_CHUNKS = ("steady", "parameters", "prompt", "workflow", "invokeai_metadata", "sd-metadata")

_INT_FIELDS = ("steps", "width", "height", "seed", "clip_skip")
_REQUIRED = ("prompt", "negative_prompt", "steps", "cfg_scale", "width", "height", "seed", "sampler", "clip_skip")
_STR_FIELDS = ("prompt", "negative_prompt", "sampler", "model_name", "model_hash", "model_arch", "device", "dtype",
               "steady_version")


@dataclass
class PngInfo:
    """What a PNG says about how it was made.

    source: 'steady', 'a1111', 'comfyui', 'invokeai' or 'none'.
    parameters_text: A1111-style text (synthesised for ComfyUI/InvokeAI); "" when unknown.
    params: our ImageParams names (prompt, negative_prompt, steps, sampler, cfg_scale, seed,
        width, height, model_hash, model_name, clip_skip) plus every other value verbatim.
    raw: every text chunk, as stored.
    warnings: what could not be parsed, one line each.
    """

    source: str
    parameters_text: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def image_params(self) -> ImageParams | None:
        """The ImageParams for our own files (None when the chunk is missing or incomplete)."""
        if self.source != "steady" or any(name not in self.params for name in _REQUIRED):
            return None
        filled = {name: self.params.get(name, "") for name in _STR_FIELDS}
        filled.update(self.params)
        return ImageParams.from_dict(filled)


def a1111_parameters(params: ImageParams, version: bool = True) -> str:
    """A1111's `parameters` text for one image, field for field as A1111 writes it. What is
    unknown (an imported PNG's None or "") is left out; `version`: say steady made it."""
    from steady.version import __version__

    post = params.extra.get("postprocess")
    if post and post.get("source_parameters"):  # an upscale of a PNG steady did not make: its text, as it was
        return str(post["source_parameters"])
    size = f"{post['source_width']}x{post['source_height']}" if post else f"{params.width}x{params.height}"
    pairs: dict[str, Any] = {
        "Steps": params.steps,
        "Sampler": params.sampler,
        "CFG scale": params.cfg_scale,
        "Seed": params.seed,
        "Size": size,  # an upscale keeps its source's, as A1111's extras do
        "Model hash": params.model_hash or None,
        "Model": params.model_name or None,
        # A1111's VAE override: the first 10 hex digits of the file's sha256, and its file name.
        "VAE hash": (params.extra.get("vae") or {}).get("hash") or None,
        "VAE": (params.extra.get("vae") or {}).get("name") or None,
        # A1111 writes Clip skip only when it differs from the default (1).
        "Clip skip": params.clip_skip if params.clip_skip is not None and params.clip_skip > 1 else None,
        # A1111's Lora extension: each LoRA applied, by the name the prompt used, and its short hash.
        "Lora hashes": infotext.format_lora_hashes(params.extra.get("loras", [])) or None,
        # A1111's textual inversion: each embedding the prompts used, by its name, and its short hash.
        "TI hashes": infotext.format_lora_hashes(params.extra.get("embeddings", [])) or None,
        **img2img_pairs(params),
        **hires_pairs(params),
        "Version": f"steady {params.steady_version or __version__}" if version else None,
    }
    return infotext.build(params.prompt, params.negative_prompt, pairs)


def img2img_pairs(params: ImageParams) -> dict[str, Any]:
    """What A1111 writes of an img2img or inpainting image (after the model, before the version)."""
    src = params.source
    if src is None:
        return {}
    pairs: dict[str, Any] = {"Denoising strength": src.strength}
    if src.mask:
        pairs["Mask blur"] = src.mask_blur if src.mask_blur > 0 else None
        pairs["Mask mode"] = "Inpaint not masked" if src.invert_mask else None
        pairs["Masked content"] = src.masked_content if src.masked_content != "original" else None
        if src.only_masked:
            pairs.update({"Inpaint area": "Only masked", "Masked area padding": src.only_masked_padding})
    if src.resize_mode != "just resize":
        pairs["Resize mode"] = src.resize_mode.capitalize()
    pairs["Init image hash"] = src.image_hash[:10]
    return pairs


def hires_pairs(params: ImageParams) -> dict[str, Any]:
    """What A1111 writes of a hires fix: Denoising strength, Hires upscale (or resize), steps, upscaler."""
    h = params.hires
    if h is None:
        return {}
    names = {"latent": "Latent", "lanczos": "Lanczos", "nearest": "Nearest"}
    upscaler = names.get(h.upscaler) or (h.upscaler.capitalize() if h.upscaler.startswith("latent") else h.upscaler)
    return {"Denoising strength": h.strength, "Hires upscale": h.scale,
            "Hires resize": None if h.scale else f"{h.width}x{h.height}",
            "Hires steps": h.steps if h.steps != params.steps else None, "Hires upscaler": upscaler}  # fmt: skip


def postprocessing_text(post: dict[str, Any]) -> str:
    """A1111's `postprocessing` text chunk for an upscaled image (its extras tab writes the same)."""
    return infotext.build("", "", {"Postprocess upscale by": post.get("upscale_by"),
                                   "Postprocess upscaler": post.get("upscaler")}).strip()


def is_temp_name(name: str) -> bool:
    """True for the temp files write_png creates (and a crash may leave behind)."""
    return bool(_TEMP_NAME.match(name))


def shareable(record: dict[str, Any]) -> dict[str, Any]:
    """An image's parameters as its PNG carries them: without the folders of the user's LoRA,
    embedding and VAE files (names and hashes reproduce the image, as in A1111's PNGs; the
    catalog row keeps the paths)."""
    extra = record.get("extra") or {}
    if extra.get("postprocess"):  # an upscale: the upscaler's and the source's folders stay in the catalog
        post = {k: v for k, v in extra["postprocess"].items() if k not in ("upscaler_path", "source_path")}
        extra = {**extra, "postprocess": post}
        record = {**record, "extra": extra}
    files = [key for key in ("loras", "embeddings", "vae") if extra.get(key)]
    if not files:
        return record
    shared = dict(extra)
    for key in files:
        value = extra[key]
        if isinstance(value, dict):
            shared[key] = {k: v for k, v in value.items() if k != "path"}
        else:
            shared[key] = [{k: v for k, v in entry.items() if k != "path"} for entry in value]
    return {**record, "extra": shared}


def write_png(image: Any, path: str | os.PathLike[str], params: ImageParams) -> Path:
    """Write `image` (a PIL image) to `path` with its metadata, atomically. Returns the path.

    Raises OutputError naming `out` and the folder when anything fails (disk full included);
    neither a temp file nor a partial target is left behind.
    """
    from PIL.PngImagePlugin import PngInfo as PilPngInfo

    target = Path(path)
    folder = target.parent
    chunks = PilPngInfo()
    chunks.add_text("parameters", a1111_parameters(params))
    if params.extra.get("postprocess"):
        chunks.add_text("postprocessing", postprocessing_text(params.extra["postprocess"]))
    chunks.add_text("steady", json.dumps(shareable(params.to_dict()), ensure_ascii=False, sort_keys=True))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("out", str(folder), f"cannot create the folder: {_reason(exc)}") from exc
    temp: str | None = None
    try:
        handle, temp = _create_temp(folder, target.name)
        with handle:
            image.save(handle, format="PNG", pnginfo=chunks)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        temp = None
        _fsync_folder(folder)
    except Exception as exc:  # anything at all: the caller gets one OutputError, the disk no debris
        raise OutputError("out", str(folder), f"cannot write {target.name}: {_reason(exc)}") from exc
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    return target


def _create_temp(folder: Path, name: str) -> tuple[IO[bytes], str]:
    # os.open with O_EXCL and mode 0o666 lets the umask decide permissions, as a plain
    # open() would; mkstemp would leave the final PNG readable by its owner only.
    for _ in range(100):
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), temp
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(folder))


def _fsync_folder(folder: Path) -> None:
    # The rename is only durable once the directory entry is; Windows cannot open folders.
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


@dataclass
class PngText:
    """Text chunks of a PNG, and what went wrong reading them."""

    chunks: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_text_chunks(path: str | os.PathLike[str], *, decode_if_needed: bool = True) -> PngText:
    """The PNG's text chunks (tEXt, zTXt, iTXt). Raises BadInput naming `path` if it is not a
    readable PNG. Pillow's decompression-bomb limit stays on."""
    from PIL import Image, UnidentifiedImageError

    where = str(path)
    result = PngText()
    ends = _ends(path, where)
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise BadInput("path", where, f"is a {image.format} image, not a PNG")
            chunks = dict(image.info)
            # Text chunks may also follow the pixel data; reaching them means decoding the
            # image, which we skip when a chunk we understand was already found before it.
            if decode_if_needed and not any(key in chunks for key in _KNOWN_CHUNKS):
                try:
                    chunks = dict(image.text)
                except (OSError, ValueError, SyntaxError) as exc:
                    result.warnings.append(f"image data is damaged ({exc}); only leading chunks were read")
    except FileNotFoundError as exc:
        raise BadInput("path", where, "no such file") from exc
    except IsADirectoryError as exc:
        raise BadInput("path", where, "is a folder, not a PNG file") from exc
    except PermissionError as exc:
        raise BadInput("path", where, "cannot be read (permission denied)") from exc
    except (UnidentifiedImageError, SyntaxError, OSError) as exc:
        if ends.truncated():
            raise BadInput("path", where, f"is a truncated PNG ({ends.size} bytes, cut off before its end)") from exc
        if ends.size == 0:
            raise BadInput("path", where, "is empty (0 bytes), not a PNG image") from exc
        if not ends.head.startswith(PNG_SIGNATURE):
            if isinstance(exc, UnidentifiedImageError):
                raise BadInput("path", where, "is not a PNG image") from exc
            raise BadInput("path", where, f"cannot be read as a PNG: {exc}") from exc
        return _by_hand(path, where, exc)
    except Image.DecompressionBombError as exc:
        raise BadInput("path", where, f"refused: {exc}") from exc
    except ValueError as exc:
        raise BadInput("path", where, f"cannot be read as a PNG: {exc}") from exc
    if ends.truncated():
        result.warnings.append(f"the file is truncated ({ends.size} bytes, no end chunk): its image data is incomplete")
    # image.info also holds non-text entries (dpi, gamma, icc_profile); iTXt values are str.
    result.chunks = {str(key): str(value) for key, value in chunks.items() if isinstance(value, str)}
    return result


_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # every complete PNG ends with this chunk


@dataclass
class _Ends:
    size: int
    head: bytes
    tail: bytes

    def truncated(self) -> bool:
        """A PNG's start (its signature, or part of it) without a PNG's end."""
        png = self.head.startswith(PNG_SIGNATURE) or (0 < self.size < 8 and PNG_SIGNATURE.startswith(self.head))
        return png and self.tail != _IEND


def _by_hand(path: str | os.PathLike[str], where: str, refused: BaseException) -> PngText:
    """A file that starts like a PNG but that Pillow refuses (a chunk another tool damaged): its
    text chunks one by one (steady.images.pngchunks), with what could not be read as warnings."""
    try:
        found = read_text_chunks_by_hand(os.fspath(path))
    except OSError as exc:
        raise BadInput("path", where, f"cannot be read: {exc.strerror or exc}") from exc
    warnings = [f"the PNG is damaged ({refused}); its text chunks were read one by one", *found.warnings]
    return PngText(chunks=found.text, warnings=warnings)


def _ends(path: str | os.PathLike[str], where: str) -> _Ends:
    """The file's size, first 16 and last 12 bytes; BadInput when it is not a regular file (a
    FIFO would block the read until something writes to it)."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise BadInput("path", where, "is a folder, not a PNG file")
        if not stat.S_ISREG(st.st_mode):
            raise BadInput("path", where, "is not a regular file (a FIFO, socket or device), not a PNG file")
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, st.st_size - len(_IEND)))
            return _Ends(st.st_size, head, f.read())
    except FileNotFoundError as exc:
        raise BadInput("path", where, "no such file") from exc
    except PermissionError as exc:
        raise BadInput("path", where, "cannot be read (permission denied)") from exc
    except OSError as exc:
        raise BadInput("path", where, f"cannot be read: {exc.strerror or exc}") from exc


def read_steady_params(path: str | os.PathLike[str]) -> ImageParams | None:
    """Our own ImageParams from the `steady` chunk, or None (foreign or damaged file).
    Fast: never decodes pixels, because we write our chunks before the image data."""
    try:
        text = read_text_chunks(path, decode_if_needed=False)
    except BadInput:
        return None
    if "steady" not in text.chunks:
        return None
    info = PngInfo(source="steady", raw=text.chunks)
    _read_steady(info)
    return info.image_params()


def read_png_info(path: str | os.PathLike[str]) -> PngInfo:
    """Parameters of any PNG from this project, A1111, ComfyUI or InvokeAI.

    Raises BadInput naming `path` when the file is missing, unreadable or not a PNG; a PNG
    with damaged or no metadata is not an error (source 'none' or warnings)."""
    text = read_text_chunks(path)
    raw = text.chunks
    info = PngInfo(source="none", raw=raw, warnings=list(text.warnings))
    # 1. Our own chunk wins: it is exact. 2. A1111 text. 3. ComfyUI graphs. 4. InvokeAI JSON.
    if "steady" in raw:
        info.source = "steady"
        _read_steady(info)
    elif "parameters" in raw:
        info.source = "a1111"
        _read_a1111(info)
    elif "prompt" in raw or "workflow" in raw:
        info.source = "comfyui"
        found = foreign.comfyui(raw.get("prompt"), raw.get("workflow"))
        info.params, info.warnings = found.params, info.warnings + found.warnings
    elif "invokeai_metadata" in raw or "sd-metadata" in raw:
        info.source = "invokeai"
        found = foreign.invokeai(raw.get("invokeai_metadata"), raw.get("sd-metadata"))
        info.params, info.warnings = found.params, info.warnings + found.warnings
    if info.source in ("comfyui", "invokeai") and info.params:
        info.parameters_text = synthesise_text(info.params)
    return info


def _read_a1111(info: PngInfo) -> None:
    parsed = infotext.parse(info.raw["parameters"])
    info.parameters_text = info.raw["parameters"]
    info.params = parsed.params
    info.warnings.extend(parsed.warnings)


def _read_steady(info: PngInfo) -> None:
    # Our chunk is exact, so when it is whole it is all we report. When it is damaged, the
    # A1111 text we wrote beside it fills the gaps and the warnings say what was wrong.
    problems: list[str] = []
    good: dict[str, Any] = {}
    try:
        data = json.loads(info.raw["steady"])
    except json.JSONDecodeError as exc:
        data = None
        problems.append(f"steady chunk is not valid JSON: {exc}")
    if data is not None and not isinstance(data, dict):
        problems.append(f"steady chunk is a JSON {type(data).__name__}, not an object")
    elif isinstance(data, dict):
        for key, value in data.items():
            problem = _type_problem(key, value)
            if problem:
                problems.append(f"steady chunk: {key}={value!r} {problem}")
            else:
                good[key] = float(value) if key == "cfg_scale" else value
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            problems.append("steady chunk lacks " + ", ".join(missing))
    if problems and "parameters" in info.raw:
        _read_a1111(info)
    info.params.update(good)
    info.warnings.extend(problems)
    whole = info.image_params()
    if "parameters" in info.raw:
        info.parameters_text = info.raw["parameters"]
    elif whole is not None:
        info.parameters_text = a1111_parameters(whole)
    else:
        info.parameters_text = synthesise_text(info.params)


def _type_problem(key: str, value: Any) -> str:
    if key in _INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int)):
        return "is not a whole number"
    if key == "cfg_scale" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "is not a number"
    if key in _STR_FIELDS and not isinstance(value, str):
        return "is not text"
    if key == "extra" and not isinstance(value, dict):
        return "is not an object"
    return ""


def synthesise_text(params: dict[str, Any]) -> str:
    """A1111-style text from a params dict (for ComfyUI/InvokeAI images, or damaged ours)."""
    width, height = params.get("width"), params.get("height")
    clip_skip = params.get("clip_skip")
    pairs: dict[str, Any] = {
        "Steps": params.get("steps"),
        "Sampler": params.get("sampler"),
        "Schedule type": params.get("schedule_type"),
        "CFG scale": params.get("cfg_scale"),
        "Seed": params.get("seed"),
        "Size": f"{width}x{height}" if width and height else None,
        "Model hash": params.get("model_hash"),
        "Model": params.get("model_name"),
        "Denoising strength": params.get("denoising_strength"),
        "Clip skip": clip_skip if isinstance(clip_skip, int) and clip_skip > 1 else None,
    }
    return infotext.build(str(params.get("prompt") or ""), str(params.get("negative_prompt") or ""), pairs)
