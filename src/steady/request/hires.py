"""A request's hires fix, resolved (torch-free): the second pass's size, steps, upscaler, strength.

    hires = resolve_hires(request, cfg)     # steady.params.Hires, or None without one

As A1111's txt2img "Hires. fix": the first pass at width x height, then that image (or its
latents) enlarged by ``hires_scale`` (or to ``hires_width`` x ``hires_height``; one of the two
alone keeps the aspect ratio) and repainted by img2img at ``hires_strength`` with ``hires_steps``
steps (0: as many as the first pass). The size is rounded down to multiples of 8. Upscalers: A1111's
latent ones (bilinear, bicubic, nearest, antialiased), Lanczos and nearest, or an upscaler model
(steady.request.upscale.find_upscaler: a spandrel model in ``upscaler_dir``).
"""

from __future__ import annotations

from steady.config import Settings
from steady.errors import BadInput
from steady.params import HIRES_BUILTIN, MAX_SIDE, MIN_SIDE, GenerationRequest, Hires


def resolve_hires(request: GenerationRequest, cfg: Settings) -> Hires | None:
    """The run's second pass (``request`` has its size filled in), or BadInput naming the field."""
    if not request.hires_on():
        return None
    width, height = request.width or 0, request.height or 0
    scale = request.hires_scale
    if request.hires_width or request.hires_height:
        if scale is not None:
            raise BadInput("hires_scale", scale, "give either --hires-scale or --hires-width/--hires-height, not both")
        target_w = request.hires_width or request.hires_height * width // height  # type: ignore[operator]
        target_h = request.hires_height or request.hires_width * height // width  # type: ignore[operator]
    else:
        target_w, target_h = int(width * scale), int(height * scale)  # type: ignore[operator]
    target_w, target_h = target_w // 8 * 8, target_h // 8 * 8
    if not (MIN_SIDE <= target_w <= MAX_SIDE and MIN_SIDE <= target_h <= MAX_SIDE):
        name, value = ("hires_scale", scale) if scale is not None else ("hires_width", request.hires_width)
        raise BadInput(name, value, f"makes a {target_w}x{target_h} second pass; each side must be from {MIN_SIDE} "
                                    f"to {MAX_SIDE}")  # fmt: skip
    upscaler, path = _upscaler(request.hires_upscaler, cfg)
    return Hires(width=target_w, height=target_h, steps=request.hires_steps or request.steps, upscaler=upscaler,
                 strength=request.hires_strength, scale=scale, upscaler_path=path)  # fmt: skip


def _upscaler(name: str, cfg: Settings) -> tuple[str, str]:
    """(canonical name, model file) for ``name``: a built-in one ("" for the file), A1111's "None"
    (a plain Lanczos resize, as A1111 does), or an upscaler model's name."""
    key = name.strip().lower()
    if key in HIRES_BUILTIN:
        return key, ""
    if key == "none":
        return "lanczos", ""
    # An upscaler model in upscaler_dir, by its file's name (as steady.request.upscale lists them;
    # looked up here because that module reads steady.request.check, which reads this one).
    folder = cfg.upscaler_dir
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES) if folder.is_dir() else []
    for p in files:
        if p.stem.lower() == key:
            return p.stem, str(p)
    known = ", ".join([*HIRES_BUILTIN, *dict.fromkeys(p.stem for p in files)])
    raise BadInput("hires_upscaler", name, f"unknown upscaler; there are: {known} (model files go in {folder})")


MODEL_SUFFIXES = (".safetensors", ".pth", ".pt")


def hires_note(hires: Hires, width: int, height: int, plan: object | None) -> str:
    """What the CLI says of a hires run: the passes' sizes and what the memory plan is for."""
    strategy = getattr(plan, "strategy", "")
    tiled = " with the VAE in tiles" if getattr(plan, "vae_tiling", False) else ""
    planned = f"; memory planned for the {hires.width}x{hires.height} pass ({strategy}{tiled})" if strategy else ""
    return (f"hires fix: {width}x{height}, then {hires.width}x{hires.height} by {hires.upscaler} at strength "
            f"{hires.strength:g} ({int(hires.steps * hires.strength)} of {hires.steps} steps){planned}")
