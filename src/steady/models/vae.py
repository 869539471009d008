"""VAE files: which one a request means (``--vae NAME|PATH|auto|none``), described from their
tensor names and shapes, hashed as A1111 does. Torch-free.

    choice = resolve_vae("auto", model_info, settings())   # VaeInfo, or None: the checkpoint's own
    vae_hash(choice, settings())                           # '0123456789', A1111's "VAE hash"

As A1111's sd_vae setting:
    auto      ``<checkpoint>.vae.safetensors`` (or .vae.pt / .vae.ckpt) beside a single-file
              checkpoint, when there is one; otherwise the checkpoint's own VAE (A1111's "Automatic")
    none      the checkpoint's own VAE
    NAME      a file in vae_dir (sub-folders too), by its file name with or without the extension;
              a missing one is refused with the closest names
    PATH      a VAE file, or a diffusers VAE folder (config.json and its weights)

Layouts: ``ldm`` (the original: encoder.down.0.block.0..., as A1111 and model sites distribute
VAEs; a ``first_stage_model.`` prefix is allowed), converted by the worker with diffusers'
converter into a VAE built from the model's own config (the shipped configs); ``diffusers``
(encoder.down_blocks.0.resnets.0...). The latent channels must be the model's.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.config import Settings
from steady.errors import BadInput
from steady.models.detect import ModelInfo, read_weights_file
from steady.models.hashing import sha256

VAE_EXT = (".safetensors", ".pt", ".ckpt")  # what A1111 lists in models/VAE
_AUTO_SUFFIXES = (".vae.safetensors", ".vae.pt", ".vae.ckpt")
_LDM_Z = "decoder.conv_in.weight"  # (channels, latent channels, 3, 3) in both layouts
_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class VaeInfo:
    path: Path
    name: str  # as A1111's "VAE" writes it: the file's name, extension included
    format: str  # 'safetensors' | 'pickle' | 'diffusers'
    layout: str  # 'ldm' | 'diffusers'
    latent_channels: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "format": self.format, "layout": self.layout,
                "latent_channels": self.latent_channels, "size_bytes": self.size_bytes}  # fmt: skip


def inspect_vae(path: str | Path, argument: str = "vae") -> VaeInfo:
    """Describe a VAE file or diffusers VAE folder; BadInput naming ``argument`` when it is not one."""
    p = Path(path)
    if p.is_dir():
        weights = next((p / n for n in ("diffusion_pytorch_model.safetensors",) if (p / n).is_file()), None)
        if not (p / "config.json").is_file() or weights is None:
            raise BadInput(argument, str(p), "is a folder without a diffusers VAE (config.json and "
                                             "diffusion_pytorch_model.safetensors)")  # fmt: skip
        try:
            config = json.loads((p / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(argument, str(p), f"config.json cannot be read ({exc})") from exc
        return VaeInfo(p, p.name, "diffusers", "diffusers", int(config.get("latent_channels", 4)),
                       weights.stat().st_size)  # fmt: skip
    read = read_weights_file(p, argument)
    shapes, fmt, size = read.shapes, read.fmt, read.size
    shapes = {k[len(_PREFIX):] if k.startswith(_PREFIX) else k: v for k, v in shapes.items()}
    if "encoder.down.0.block.0.conv1.weight" in shapes:
        layout = "ldm"
    elif "encoder.down_blocks.0.resnets.0.conv1.weight" in shapes:
        layout = "diffusers"
    else:
        raise BadInput(argument, str(p), "is not a VAE (no encoder.down.0.block.0 or encoder.down_blocks.0 weights)")
    z = shapes.get(_LDM_Z)
    if not z or len(z) != 4:
        raise BadInput(argument, str(p), f"is not a VAE ({_LDM_Z} is missing)")
    return VaeInfo(p, p.name, fmt, layout, z[1], size)


def vae_files(folder: Path) -> list[Path]:
    from steady.models.resolve import candidates

    return [p for p in candidates(folder) if (p.suffix.lower() in VAE_EXT and p.is_file()) or p.is_dir()]


def list_vaes(settings: Settings, errors: list[tuple[Path, str]] | None = None) -> list[VaeInfo]:
    out = []
    for p in vae_files(settings.vae_dir):
        try:
            out.append(inspect_vae(p))
        except BadInput as exc:
            if errors is not None:
                errors.append((p, exc.why))
    return out


def auto_vae(model: ModelInfo) -> Path | None:
    """A1111's Automatic: ``<checkpoint>.vae.safetensors`` (.pt, .ckpt) beside a checkpoint file."""
    if model.path.is_dir():
        return None
    for suffix in _AUTO_SUFFIXES:
        candidate = model.path.with_name(model.path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def resolve_vae(value: str, model: ModelInfo, settings: Settings) -> VaeInfo | None:
    """The VAE ``value`` means for ``model`` (None: the checkpoint's own), or BadInput naming ``vae``."""
    text = value.strip()
    if text.lower() in ("none", ""):
        return None
    if text.lower() in ("auto", "automatic"):
        found = auto_vae(model)
        return inspect_vae(found) if found else None
    path = Path(text).expanduser()
    if ("/" in text or "\\" in text) or (path.exists() and not settings.vae_dir.joinpath(text).exists()):
        if not path.exists():
            raise BadInput("vae", value, "no such file or folder")
        return inspect_vae(path)
    files = vae_files(settings.vae_dir)
    for same in (lambda a, b: a == b, lambda a, b: a.lower() == b.lower()):
        found = [p for p in files if same(p.name, text) or same(p.stem, text)
                 or same(p.relative_to(settings.vae_dir).as_posix(), text)]  # fmt: skip
        if found:
            return inspect_vae(found[0])
    names = sorted({p.name for p in files})
    if not names:
        raise BadInput("vae", value, f"no VAE named {text!r}: {settings.vae_dir} has no VAE files (set vae_dir or "
                                     "a1111_dir in config.toml, or give a path)")  # fmt: skip
    stems = {p.stem: p.name for p in files}
    closest = [stems.get(n, n) for n in difflib.get_close_matches(text, sorted(stems) + names, n=3, cutoff=0.4)]
    closest = list(dict.fromkeys(closest))
    hint = ("closest: " + ", ".join(closest)) if closest else f"{len(names)} VAE files there, none close"
    raise BadInput("vae", value, f"no VAE named {text!r} in {settings.vae_dir}; {hint}")


def model_latent_channels(model: ModelInfo) -> int:
    if model.format == "diffusers":
        try:
            value = json.loads((model.path / "vae" / "config.json").read_text(encoding="utf-8")).get("latent_channels")
        except (OSError, ValueError, AttributeError):
            value = None
    else:
        value = model.overrides.get("vae", {}).get("latent_channels")
    return value if isinstance(value, int) else 4


def vae_hash(info: VaeInfo, settings: Settings) -> str:
    """A1111's "VAE hash": the first 10 hex digits of the file's sha256."""
    return sha256(info.path, settings)[:10]


def vae_entry(value: str, model: ModelInfo, settings: Settings, allow_pickle: bool) -> dict[str, Any] | None:
    """What an image records of its VAE (``extra["vae"]``: name, hash, layout, path), or None for
    the checkpoint's own; BadInput naming ``vae`` when it cannot be used with ``model``."""
    info = resolve_vae(value, model, settings)
    if info is None:
        return None
    if info.format == "pickle" and not allow_pickle:
        raise BadInput("vae", value or str(info.path), f"{info.path} is a pickle ({info.path.suffix}), which can run "
                                                       "code when loaded; convert it to .safetensors or pass "
                                                       "--allow-pickle")  # fmt: skip
    want = model_latent_channels(model)
    if info.latent_channels != want:
        raise BadInput("vae", value, f"{info.name} makes {info.latent_channels}-channel latents and the model's "
                                     f"are {want}-channel: a VAE of another model family")  # fmt: skip
    return {"name": info.name, "hash": vae_hash(info, settings), "layout": info.layout, "format": info.format,
            "path": str(info.path)}  # fmt: skip
