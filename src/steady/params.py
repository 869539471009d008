"""One schema for a generation, shared by the CLI, HTTP, the catalog and PNG metadata.

GenerationRequest is what a user asks for (seed may be -1, size may be left to the model).
ImageParams is what one image was made with: every value concrete, so that the image can
be reproduced bit-for-bit from it. Both are plain dataclasses that cross process and HTTP
boundaries as dicts (`asdict` / `from_dict`), never tuples.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from steady.errors import BadInput

# Sampler names as users know them from A1111/Forge; the worker maps them to diffusers
# schedulers (steady.worker.schedulers). Aliases cover ComfyUI/k-diffusion spellings.
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
)
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
}

DEFAULT_MAX_IMAGES = 30
DEFAULT_CFG_SCALE = 7.0  # a checkpoint's CFG when none is given (A1111's default)
MAX_SIDE = 4096
MIN_SIDE = 16
MAX_SEED = 2**32 - 1
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")


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


def resolve_seed(seed: int) -> int:
    """-1 means random; the drawn seed is recorded like any other."""
    if seed == -1:
        return random.SystemRandom().randint(0, MAX_SEED)
    return seed


@dataclass
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    cfg_scale: float | None = None  # None: the model's own (DEFAULT_CFG_SCALE, or the embedded model's)
    width: int | None = None  # None: the model's native size
    height: int | None = None
    seed: int = -1
    sampler: str = "Euler a"
    clip_skip: int = 1  # A1111 convention: 1 = use the last layer
    n_images: int = 1
    max_images: int = DEFAULT_MAX_IMAGES
    model: str = ""  # name in the models folder, or a path; "" = embedded default
    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    out_dir: str | None = None
    until_saturated: bool = False  # n_images is then a cap: stop when the run stops producing new patterns
    x_axis: str = ""  # X/Y grid (steady.variants): "Prompt S/R: red, blue" / "Seed: 1, 2" / "CFG: 3, 7" / ...
    y_axis: str = ""

    def check(self) -> GenerationRequest:
        """Raise BadInput naming the first argument that is out of range; return self."""
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise BadInput("prompt", self.prompt, "must be text")
        if not self.prompt.strip() and not self.negative_prompt.strip():
            raise BadInput("prompt", self.prompt, "is empty and there is no negative prompt")
        _int_range("steps", self.steps, 1, 150)
        cfg = self.cfg_scale
        if cfg is not None and (isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not 0.0 <= cfg <= 30.0):
            raise BadInput("cfg_scale", self.cfg_scale, "must be between 0 and 30")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            _int_range(name, value, MIN_SIDE, MAX_SIDE)
            if value % 8:
                raise BadInput(name, value, "must be a multiple of 8")
        if self.seed != -1:
            _int_range("seed", self.seed, 0, MAX_SEED)
        self.sampler = canonical_sampler(self.sampler)
        _int_range("clip_skip", self.clip_skip, 1, 12)
        _int_range("max_images", self.max_images, 1, 100_000)
        _int_range("n_images", self.n_images, 1, 100_000)
        if self.y_axis and not self.x_axis:
            raise BadInput("y", self.y_axis, "needs an x axis too (give --x first)")
        if (self.x_axis or self.y_axis) and self.until_saturated:
            raise BadInput("until_saturated", True, "cannot be combined with an X/Y grid (the grid sets the images)")
        if self.until_saturated and self.n_images == 1:
            self.n_images = self.max_images  # the cap; the run stops itself before when it saturates
        if self.n_images > self.max_images:
            raise BadInput(
                "n_images",
                self.n_images,
                f"more than {self.max_images} images from one prompt is wasted: variety saturates "
                "after a few dozen images, so iterate on the prompt instead; "
                "raise the cap with --max-images N if you really want more",
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise BadInput("device", self.device, "must be one of " + ", ".join(DEVICES))
        if self.dtype not in DTYPES:
            raise BadInput("dtype", self.dtype, "must be one of " + ", ".join(DTYPES))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        return cls(**_known_fields(cls, data))


@dataclass
class ImageParams:
    """Everything one image was made with. Stored in the PNG and in its catalog row."""

    prompt: str
    negative_prompt: str
    steps: int
    cfg_scale: float
    width: int
    height: int
    seed: int
    sampler: str
    clip_skip: int
    model_name: str
    model_hash: str  # A1111 short hash: first 10 hex digits of the file's sha256
    model_arch: str
    device: str
    dtype: str
    steady_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageParams:
        return cls(**_known_fields(cls, data))

    def request(self, **overrides: Any) -> GenerationRequest:
        """The request that reproduces this image (one image, the same seed)."""
        base = dict(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            width=self.width,
            height=self.height,
            seed=self.seed,
            sampler=self.sampler,
            clip_skip=self.clip_skip,
            device=self.device,
            dtype=self.dtype,
        )
        base.update(overrides)
        return GenerationRequest(**base)


@dataclass
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


def _int_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(name, value, "must be a whole number")
    if not (low <= value <= high):
        raise BadInput(name, value, f"must be between {low} and {high}")


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
