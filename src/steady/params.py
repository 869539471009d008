"""The request, defined once: one table of fields from which every way in is built.

``GenerationRequest`` is what a user asks for. Each of its fields carries a ``Param`` (type,
default, bounds, help, CLI flags, A1111 name) in its metadata: that is the parameter table.
The CLI's options (steady.cli.options), our API's pydantic model (steady.web.api), the A1111
API's mapping (steady.web.a1111) and ``validate()`` read it, so a new sampling parameter is one
row here, one step in the worker, and nothing else restated.

``ImageParams`` is what one image was made with: every value concrete, so that the image can be
reproduced bit-for-bit from it; it is stored in the PNG and in its catalog row. Both are frozen
dataclasses that cross process and HTTP boundaries as typed objects or dicts, never tuples.

This module sits at the bottom of the house (it imports only steady.errors): the catalog and the
PNG writer store its records.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any

from steady.errors import BadInput, check_text, shorten

# Sampler names as users know them from A1111/Forge; the worker maps them to diffusers
# schedulers (steady.worker.schedulers). Aliases cover ComfyUI/k-diffusion spellings.
# A name ending in a schedule type's label ("DPM++ 2M Karras", "Euler a SGM Uniform") is that
# sampler on that schedule, as A1111 wrote it before its Schedule type menu and still reads it.
# LCM and TCD are the few-step samplers of LCM/TCD-distilled models and LoRAs; "SGM Uniform" is
# trailing timestep spacing, what Turbo and Lightning models are sampled with.
SAMPLERS: tuple[str, ...] = (
    "Euler a",
    "Euler",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DDIM",
    "UniPC",
    "LMS",
    "Heun",
    "LCM",
    "TCD",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Karras",
    "Euler a SGM Uniform",
    "Euler SGM Uniform",
    "DPM++ 2M SGM Uniform",
    "DPM++ SDE SGM Uniform",
)
# A1111's "Schedule type" menu (and its API's `scheduler`): folded into the sampler's name.
SCHEDULE_TYPES: tuple[str, ...] = ("Automatic", "Karras", "SGM Uniform")
_SAMPLER_ALIASES = {
    "euler_a": "Euler a",
    "euler_ancestral": "Euler a",
    "k_euler_a": "Euler a",
    "euler": "Euler",
    "k_euler": "Euler",
    "dpmpp_2m": "DPM++ 2M",
    "dpm++2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "dpm++2mkarras": "DPM++ 2M Karras",
    "dpmpp_sde_karras": "DPM++ SDE Karras",
    "dpm++sdekarras": "DPM++ SDE Karras",
    "ddim": "DDIM",
    "unipc": "UniPC",
    "uni_pc": "UniPC",
    "lms": "LMS",
    "k_lms": "LMS",
    "heun": "Heun",
    "k_heun": "Heun",
    "lcm": "LCM",
    "k_lcm": "LCM",
    "tcd": "TCD",
    "dpmpp_sde": "DPM++ SDE",
    "dpm++sde": "DPM++ SDE",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpm++2msde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras",
    "dpm++2msdekarras": "DPM++ 2M SDE Karras",
    "euler_a_sgm_uniform": "Euler a SGM Uniform",
    "euler_ancestral_sgm_uniform": "Euler a SGM Uniform",
    "euler_sgm_uniform": "Euler SGM Uniform",
    "dpmpp_2m_sgm_uniform": "DPM++ 2M SGM Uniform",
    "dpmpp_sde_sgm_uniform": "DPM++ SDE SGM Uniform",
}

DEFAULT_MAX_IMAGES = 30
DEFAULT_CFG_SCALE = 7.0  # a checkpoint's CFG when none is given (A1111's default)
DEFAULT_STEPS = 20  # a checkpoint's steps when none are given (A1111's default)
DEFAULT_SAMPLER = "Euler a"
MAX_SIDE = 4096
MIN_SIDE = 16
MAX_SEED = 2**32 - 1
MAX_STEPS = 150
MAX_CFG = 30.0
# A prompt's bound. Real A1111 prompts, with LoRA tags, embeddings and BREAK sections, run to a few
# thousand characters; the text encoder reads 75 tokens (some 300 characters) per chunk, so 20,000
# characters is some 60 chunks, far past what still steers an image, while one request, its catalog
# row and its PNG text chunk stay small.
MAX_PROMPT_CHARS = 20_000
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_NAME_CHARS = 100  # a sampler's or a device's name
DEVICES = ("auto", "cpu", "cuda", "mps")
# img2img and inpainting, as A1111 names them (its API numbers them in this order).
RESIZE_MODES = ("just resize", "crop and resize", "resize and fill", "latent upscale")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
DEFAULT_STRENGTH = 0.75  # A1111's img2img denoising strength
MAX_MASK_BLUR = 64
# Hires fix: the upscalers every install has (A1111's latent ones and PIL's); a spandrel model's name too.
HIRES_BUILTIN = ("latent", "latent (antialiased)", "latent (bicubic)", "latent (bicubic antialiased)",
                 "latent (nearest)", "latent (nearest-exact)", "lanczos", "nearest")  # fmt: skip
DEFAULT_HIRES_STRENGTH = 0.7  # A1111's hires denoising strength
MAX_HIRES_SCALE = 4.0
MAX_PADDING = 256
DTYPES = ("auto", "float32", "float16", "bfloat16")
# What runs the UNet: torch, or OpenVINO on the CPU (the optional extra steady[openvino];
# docs/speed.md). The other networks always run in torch.
BACKENDS = ("torch", "openvino")


@dataclass(frozen=True)
class Param:
    """One row of the parameter table (the metadata of a GenerationRequest field)."""

    kind: type  # int, float, str or bool: what the value must be
    help: str
    flags: tuple[str, ...] = ()  # CLI spellings, the canonical long one first among the longs; () = not an option
    low: float | None = None
    high: float | None = None
    multiple_of: int = 0
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is allowed: the model decides (steady.request.check fills it in)
    a1111: str = ""  # the same value's name in A1111's txt2img API ("" = none, or mapped by hand)
    api: bool = True  # a field of our HTTP API (False: a setting of the machine running the CLI)
    metavar: str = ""
    max_length: int = 0  # text: the most characters it may have (0: no bound)
    multiple: bool = False  # the CLI takes it more than once (init_image: one run per value; styles: one per line)


def param(default: Any, kind: type, help: str, **meta: Any) -> Any:
    """A GenerationRequest field with its row of the table (``default=REQUIRED``: no default)."""
    if default is REQUIRED:
        return field(metadata={"param": Param(kind, help, **meta)})
    return field(default=default, metadata={"param": Param(kind, help, **meta)})


REQUIRED = dataclasses.MISSING


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = param(REQUIRED, str, "What to draw (A1111 syntax: (word:1.3), [from:to:0.5], BREAK, {a|b}, __wildcard__; "
                        f"at most {MAX_PROMPT_CHARS:,} characters).", a1111="prompt", max_length=MAX_PROMPT_CHARS)  # fmt: skip
    negative_prompt: str = param("", str, f"Negative prompt (at most {MAX_PROMPT_CHARS:,} characters).",
                                 flags=("-N", "--negative"), a1111="negative_prompt", max_length=MAX_PROMPT_CHARS)  # fmt: skip
    steps: int | None = param(None, int, f"Sampling steps; default: the model's ({DEFAULT_STEPS}, or its defaults file's, or "
                              "a few-step model's or LoRA's own).", flags=("--steps",), low=1, high=MAX_STEPS,
                              optional=True, a1111="steps")  # fmt: skip
    cfg_scale: float | None = param(None, float, "CFG scale; default: the model's (7, or 5 for the embedded model, "
                                    "the scale it was trained at).", flags=("--cfg", "--cfg-scale"), low=0.0,
                                    high=MAX_CFG, optional=True, a1111="cfg_scale")  # fmt: skip
    width: int | None = param(None, int, "Multiple of 8; default: the model's native size.", flags=("-W", "--width"),
                              low=MIN_SIDE, high=MAX_SIDE, multiple_of=8, optional=True, a1111="width")  # fmt: skip
    height: int | None = param(None, int, "Multiple of 8; default: the model's native size.",
                               flags=("-H", "--height"), low=MIN_SIDE, high=MAX_SIDE, multiple_of=8, optional=True,
                               a1111="height")  # fmt: skip
    seed: int = param(-1, int, "-1 draws a random seed (it is recorded).", flags=("--seed",), low=-1, high=MAX_SEED,
                      a1111="seed")  # fmt: skip
    sampler: str | None = param(None, str, "One of: " + ", ".join(SAMPLERS) + f"; default: the model's ({DEFAULT_SAMPLER}, "
                                "or its defaults file's, or a few-step model's or LoRA's own).", flags=("--sampler",),
                                optional=True, max_length=MAX_NAME_CHARS)  # fmt: skip
    schedule_type: str = param("Automatic", str, "A1111's Schedule type: " + ", ".join(SCHEDULE_TYPES) + " (SGM Uniform: "
                               "trailing timesteps, for Turbo/Lightning models); folded into the sampler's name.",
                               flags=("--schedule-type",), choices=SCHEDULE_TYPES)  # fmt: skip
    clip_skip: int = param(1, int, "A1111 convention: 2 = penultimate layer.", flags=("--clip-skip",), low=1, high=12)
    n_images: int = param(1, int, "Images in this run.", flags=("-n", "--images"), low=1, high=100_000)
    max_images: int = param(DEFAULT_MAX_IMAGES, int, "Cap on images per prompt.", flags=("--max-images",), low=1,
                            high=100_000)  # fmt: skip
    model: str = param("", str, "Name in the models folder, or a path. Default: the embedded model.",
                       flags=("-m", "--model"), max_length=MAX_PATH_CHARS)  # fmt: skip
    vae: str = param("auto", str, "VAE: a name in vae_dir, a path, auto (<checkpoint>.vae.safetensors beside the "
                     "checkpoint, as A1111's Automatic) or none (the checkpoint's own).", flags=("--vae",),
                     max_length=MAX_PATH_CHARS, metavar="NAME|PATH|auto|none")  # fmt: skip
    styles: str = param("", str, "A1111 styles from styles_file, applied into the prompt in order (--style NAME, "
                        "repeatable; one name per line in the API).", flags=("--style",), max_length=MAX_PROMPT_CHARS,
                        metavar="NAME", multiple=True)  # fmt: skip
    device: str = param("auto", str, "/".join(DEVICES) + " or cuda:N", flags=("--device",), api=False,
                        max_length=MAX_NAME_CHARS)  # fmt: skip
    dtype: str = param("auto", str, "/".join(DTYPES), flags=("--dtype",), choices=DTYPES, api=False)
    backend: str | None = param(None, str, "What runs the UNet: torch, or openvino (CPU only; pip install "
                                "'steady[openvino]'; converted once per model and LoRA set, then cached). Default: "
                                "the backend setting of config.toml, else torch.", flags=("--backend",),
                                choices=BACKENDS, optional=True)  # fmt: skip
    allow_pickle: bool = param(False, bool, "Load .ckpt/.pt pickles (with torch.load weights_only=True).",
                               flags=("--allow-pickle",), api=False)  # fmt: skip
    out_dir: str | None = param(None, str, "Output folder (default: STEADY_HOME/outputs/YYYY-MM-DD).",
                                flags=("--out",), optional=True, api=False, max_length=MAX_PATH_CHARS)  # fmt: skip
    until_saturated: bool = param(False, bool, "Keep going (up to -n, or --max-images when -n is 1) until the run "
                                  "stops producing new patterns.", flags=("--until-saturated",))  # fmt: skip
    init_image: str = param("", str, "Start from this image (img2img): a PNG, JPEG or WebP file; size defaults to "
                            "its own (rounded to multiples of 8). Several, or a folder: one run per image. On the API: "
                            "an uploaded image's 'sha256:HEX' or a catalog image's 'image:ID'.",
                            flags=("--init-image",), max_length=MAX_PATH_CHARS, metavar="PATH", multiple=True)  # fmt: skip
    strength: float = param(DEFAULT_STRENGTH, float, "Denoising strength from --init-image (A1111's): 0 keeps the "
                            "image, 1 replaces it; of N steps about N x strength run.",
                            flags=("--strength", "--denoising-strength"), low=0.0, high=1.0)  # fmt: skip
    resize_mode: str = param("just resize", str, "How --init-image is fitted to the size: " + ", ".join(RESIZE_MODES)
                             + " (A1111's four).", flags=("--resize-mode",), choices=RESIZE_MODES)  # fmt: skip
    mask: str = param("", str, "Inpaint: a mask image for --init-image, white = repaint (A1111's convention); on the "
                      "API 'sha256:HEX' or 'image:ID'.", flags=("--mask",), max_length=MAX_PATH_CHARS,
                      metavar="PATH")  # fmt: skip
    invert_mask: bool = param(False, bool, "Repaint where the mask is black instead.", flags=("--invert-mask",))
    mask_blur: int = param(4, int, "Blur of the mask's edge, in pixels (A1111's Mask blur).", flags=("--mask-blur",),
                           low=0, high=MAX_MASK_BLUR)  # fmt: skip
    masked_content: str = param("original", str, "What the masked area starts from: " + ", ".join(MASKED_CONTENT) + ".",
                                flags=("--masked-content",), choices=MASKED_CONTENT)  # fmt: skip
    only_masked: bool = param(False, bool, "Inpaint area 'Only masked': repaint the mask's region (plus padding) at "
                              "the full size, then paste it back.", flags=("--only-masked",))  # fmt: skip
    only_masked_padding: int = param(32, int, "Pixels around the mask's region with --only-masked.",
                                     flags=("--only-masked-padding",), low=0, high=MAX_PADDING)  # fmt: skip
    hires_scale: float | None = param(None, float, "Hires fix: a second pass, img2img of the first upscaled by this "
                                      "factor (A1111's Upscale by); or give --hires-width/--hires-height.",
                                      flags=("--hires-scale",), low=1.0, high=MAX_HIRES_SCALE, optional=True)  # fmt: skip
    hires_width: int | None = param(None, int, "Hires fix: the second pass's width (A1111's Resize width to).",
                                    flags=("--hires-width",), low=MIN_SIDE, high=MAX_SIDE, multiple_of=8,
                                    optional=True)  # fmt: skip
    hires_height: int | None = param(None, int, "Hires fix: the second pass's height.", flags=("--hires-height",),
                                     low=MIN_SIDE, high=MAX_SIDE, multiple_of=8, optional=True)  # fmt: skip
    hires_steps: int = param(0, int, "Hires fix: the second pass's steps (0: as many as the first, A1111's).",
                             flags=("--hires-steps",), low=0, high=MAX_STEPS)  # fmt: skip
    hires_upscaler: str = param("latent", str, "Hires fix: how the first pass is enlarged: latent (A1111's Latent, "
                                "and its bicubic/nearest/antialiased kinds), lanczos, nearest, or an upscaler model's "
                                "name.", flags=("--hires-upscaler",), max_length=MAX_PATH_CHARS)  # fmt: skip
    hires_strength: float = param(DEFAULT_HIRES_STRENGTH, float, "Hires fix: the second pass's denoising strength "
                                  "(A1111's 0.7).", flags=("--hires-strength",), low=0.0, high=1.0)  # fmt: skip
    x_axis: str = param("", str, "X/Y grid axis: Prompt S/R, Seed, CFG, Steps or Sampler, e.g. --x 'Prompt S/R: "
                        "red, blue'.", flags=("--x",), metavar="'KIND: v1, v2'", max_length=MAX_PROMPT_CHARS)  # fmt: skip
    y_axis: str = param("", str, "Second grid axis (with --x).", flags=("--y",), metavar="'KIND: v1, v2'",
                        max_length=MAX_PROMPT_CHARS)  # fmt: skip

    def validate(self) -> GenerationRequest:
        """This request with its values checked against the table (BadInput naming the first one
        out of range) and normalised: a new request, the sampler's canonical name, the cap of a
        --until-saturated run. What depends on the model is filled in by steady.request.check."""
        for name, p in table().items():
            _check_value(name, getattr(self, name), p)
        if not self.prompt.strip() and not self.negative_prompt.strip():
            raise BadInput("prompt", self.prompt, "is empty and there is no negative prompt")
        # The sampler on its schedule type; with no sampler given, the model's (steady.request.check).
        sampler, schedule_type = self.sampler, self.schedule_type
        if sampler is not None:
            sampler, schedule_type = with_schedule(canonical_sampler(sampler), schedule_type), "Automatic"
        if self.y_axis and not self.x_axis:
            raise BadInput("y", self.y_axis, "needs an x axis too (give --x first)")
        if (self.x_axis or self.y_axis) and self.until_saturated:
            raise BadInput("until_saturated", True, "cannot be combined with an X/Y grid (the grid sets the images)")
        n_images = self.n_images
        if self.until_saturated and n_images == 1:
            n_images = self.max_images  # the cap; the run stops itself before when it saturates
        if n_images > self.max_images:
            raise BadInput(
                "n_images",
                n_images,
                f"more than {self.max_images} images from one prompt is wasted: variety saturates "
                "after a few dozen images, so iterate on the prompt instead; "
                "raise the cap with --max-images N if you really want more",
            )
        if self.mask and not self.init_image:
            raise BadInput("mask", self.mask, "needs an init image to paint on (give --init-image)")
        if self.hires_on() and self.init_image:
            raise BadInput("hires_scale", self.hires_scale or f"{self.hires_width}x{self.hires_height}",
                           "hires fix is a second pass of txt2img; with --init-image give the size itself")  # fmt: skip
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise BadInput("device", self.device, "must be one of " + ", ".join(DEVICES))
        return dataclasses.replace(self, sampler=sampler, schedule_type=schedule_type, n_images=n_images)

    def hires_on(self) -> bool:
        """Whether the request asks for a hires-fix second pass."""
        return self.hires_scale is not None or self.hires_width is not None or self.hires_height is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        return cls(**_known_fields(cls, data))


def table() -> dict[str, Param]:
    """The parameter table: each GenerationRequest field's name and its Param, in order."""
    return {f.name: f.metadata["param"] for f in dataclasses.fields(GenerationRequest)}


def _check_value(name: str, value: Any, p: Param) -> None:
    if value is None and p.optional:
        return
    if p.kind is bool:
        if not isinstance(value, bool):
            raise BadInput(name, value, "must be true or false")
        return
    if p.kind is str:
        if not isinstance(value, str):
            raise BadInput(name, value, "must be text")
        if p.max_length and len(value) > p.max_length:
            raise BadInput(name, shorten(value), f"is {len(value):,} characters long; at most {p.max_length:,} are taken")
        check_text(name, value)
        if p.choices and value not in p.choices:
            raise BadInput(name, value, "must be one of " + ", ".join(p.choices))
        return
    if isinstance(value, bool) or not isinstance(value, (int, float) if p.kind is float else int):
        raise BadInput(name, value, "must be a number" if p.kind is float else "must be a whole number")
    if p.kind is float and not math.isfinite(value):
        raise BadInput(name, value, "must be a finite number")
    if p.low is not None and p.high is not None and not p.low <= value <= p.high:
        low, high = (p.low, p.high) if p.kind is float else (int(p.low), int(p.high))
        raise BadInput(name, value, f"must be between {low} and {high}")
    if p.multiple_of and value % p.multiple_of:
        raise BadInput(name, value, f"must be a multiple of {p.multiple_of}")


def canonical_sampler(name: str) -> str:
    """Return the canonical sampler name for `name`, or raise BadInput naming `sampler`."""
    for known in SAMPLERS:
        if name.lower() == known.lower():
            return known
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key in _SAMPLER_ALIASES:
        return _SAMPLER_ALIASES[key]
    squashed = key.replace("_", "")
    if squashed in _SAMPLER_ALIASES:
        return _SAMPLER_ALIASES[squashed]
    raise BadInput("sampler", name, "unknown sampler; choose one of: " + ", ".join(SAMPLERS))


def with_schedule(sampler: str, schedule_type: str, argument: str = "schedule_type") -> str:
    """The canonical sampler ``sampler`` on A1111's schedule type ``schedule_type`` ("Automatic":
    as it is), e.g. ("Euler a", "SGM Uniform") -> "Euler a SGM Uniform"; BadInput naming
    ``argument`` when that pair is not one of SAMPLERS."""
    label = next((t for t in SCHEDULE_TYPES if t.lower() == schedule_type.strip().lower()), None)
    if label is None:
        raise BadInput(argument, schedule_type, "must be one of " + ", ".join(SCHEDULE_TYPES))
    if label == "Automatic" or sampler.endswith(" " + label):
        return sampler
    base = next((sampler[: -len(t) - 1] for t in SCHEDULE_TYPES if sampler.endswith(" " + t)), sampler)
    if f"{base} {label}" not in SAMPLERS:
        with_it = [s for s in SAMPLERS if s.endswith(" " + label)]
        raise BadInput(argument, schedule_type, f"is not available with {base}; it is with: " + ", ".join(with_it))
    return f"{base} {label}"


def resolve_seed(seed: int) -> int:
    """-1 means random; the drawn seed is recorded like any other."""
    if seed == -1:
        return random.SystemRandom().randint(0, MAX_SEED)
    return seed


@dataclass(frozen=True)
class Source:
    """The image an img2img or inpainting generation starts from, as the worker reads it: files in
    STEADY_HOME/inputs named by their sha256 (steady.images.inputs), never pixels; and A1111's
    img2img settings for it."""

    image: str  # the stored init image's path
    image_hash: str  # sha256 of its bytes: the catalog's content_hash when it came from there
    strength: float = DEFAULT_STRENGTH
    resize_mode: str = "just resize"
    mask: str = ""  # the stored mask's path ("" = img2img without a mask)
    mask_hash: str = ""
    invert_mask: bool = False
    mask_blur: int = 4
    masked_content: str = "original"
    only_masked: bool = False
    only_masked_padding: int = 32
    image_id: int | None = None  # the init image's catalog row, when it has one (lineage)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class Hires:
    """A hires-fix second pass (A1111's): the first pass upscaled to width x height, then img2img."""

    width: int
    height: int
    steps: int  # the second pass's N (its last N x strength run)
    upscaler: str  # one of HIRES_BUILTIN, or an upscaler model's name
    strength: float = DEFAULT_HIRES_STRENGTH
    scale: float | None = None  # as asked (A1111's "Hires upscale"); None: the size was given
    upscaler_path: str = ""  # an upscaler model's file ("" for the built-in ones)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hires:
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class ImageParams:
    """Everything one image was made with. Stored in the PNG and in its catalog row.

    An image made here knows every value. An imported one knows what its metadata said: a number
    it did not say is None and a text it did not say is "" (unknown, never an invented 0)."""

    prompt: str
    negative_prompt: str
    steps: int | None
    cfg_scale: float | None
    width: int
    height: int
    seed: int | None
    sampler: str
    clip_skip: int | None
    model_name: str
    model_hash: str  # A1111 short hash: first 10 hex digits of the file's sha256
    model_arch: str
    device: str
    dtype: str
    steady_version: str = ""
    backend: str = "torch"  # what ran the UNet (BACKENDS)
    extra: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None  # img2img / inpainting: the image it started from (None: txt2img)
    hires: Hires | None = None  # hires fix: the second pass (None: none)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageParams:
        known = _known_fields(cls, data)
        if isinstance(known.get("source"), dict):
            known["source"] = Source.from_dict(known["source"])
        if isinstance(known.get("hires"), dict):
            known["hires"] = Hires.from_dict(known["hires"])
        return cls(**known)

    def request(self, **overrides: Any) -> GenerationRequest:
        """The request that reproduces this image (one image, the same seed); what is unknown
        (None) is left to the request's defaults."""
        shared = {name: getattr(self, name) for name in table() if getattr(self, name, None) is not None}
        if self.source is not None:  # the stored inputs, by hash (steady.images.inputs finds them)
            src = self.source
            shared.update(init_image=f"sha256:{src.image_hash}", mask=f"sha256:{src.mask_hash}" if src.mask_hash else "",
                          **{k: getattr(src, k) for k in ("strength", "resize_mode", "invert_mask", "mask_blur",
                                                          "masked_content", "only_masked", "only_masked_padding")})  # fmt: skip
        if self.hires is not None:
            h = self.hires
            shared.update(hires_scale=h.scale, hires_width=None if h.scale else h.width,
                          hires_height=None if h.scale else h.height, hires_steps=h.steps, hires_upscaler=h.upscaler,
                          hires_strength=h.strength)  # fmt: skip
        vae = self.extra.get("vae") or {}  # the VAE it was made with (a path in the catalog, a name in a PNG), or its own
        shared["vae"] = vae.get("path") or vae.get("name") or "none"
        return GenerationRequest(**{**shared, **overrides})


@dataclass(frozen=True)
class GenerationResult:
    """One finished image: where it is, what made it, what it cost."""

    path: str
    params: ImageParams
    index: int
    run_id: int | None
    image_id: int | None
    seconds: float
    peak_rss_bytes: int = 0
    adherence: float | None = None  # prompt adherence (steady.worker.adherence); higher is closer
    novelty: float | None = None  # distance to the nearest earlier image of the same prompt

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
