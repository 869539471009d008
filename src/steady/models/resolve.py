"""Turn `--model NAME_OR_PATH` into a path, and list the models a user has.

A name is looked up in settings.models_dir (STEADY_MODELS or <home>/models): NAME as given,
NAME.safetensors, NAME.ckpt (and .pt/.pth), or a diffusers folder NAME/ with model_index.json;
failing those, a unique file or folder of that name anywhere below models_dir (A1111 users keep
sub-folders). Errors name the argument `model` and list what is available.
"""

from __future__ import annotations

import logging
from pathlib import Path

from steady.config import Settings
from steady.errors import ModelError
from steady.models.detect import PICKLE_EXT, SAFETENSORS_EXT, ModelInfo, inspect_model

log = logging.getLogger(__name__)

# .bin files in a models folder are more often other things (embeddings, VAEs); a .bin
# checkpoint can still be used by path or full name.
LISTED_EXT = SAFETENSORS_EXT + (".ckpt", ".pt", ".pth")
_MAX_LISTED_IN_ERROR = 20


def _is_folder_model(p: Path) -> bool:
    return p.is_dir() and (p / "model_index.json").is_file()


def candidates(models_dir: Path) -> list[Path]:
    """Model files and diffusers folders under models_dir (not descending into those folders)."""
    found: list[Path] = []
    if not models_dir.is_dir():
        return found
    stack = [models_dir]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if _is_folder_model(e):
                found.append(e)
            elif e.is_dir():
                stack.append(e)
            elif e.suffix.lower() in LISTED_EXT and e.is_file():
                found.append(e)
    return sorted(found, key=lambda p: p.relative_to(models_dir).as_posix().lower())


def _display(p: Path, models_dir: Path) -> str:
    rel = p.relative_to(models_dir).as_posix()
    return rel if p.is_dir() else rel[: -len(p.suffix)]


def _available_text(models_dir: Path) -> str:
    names = [_display(p, models_dir) for p in candidates(models_dir)]
    if not names:
        return f"no models in {models_dir} (put .safetensors files or diffusers folders there, or pass a path)"
    more = f" and {len(names) - _MAX_LISTED_IN_ERROR} more" if len(names) > _MAX_LISTED_IN_ERROR else ""
    return f"available in {models_dir}: " + ", ".join(names[:_MAX_LISTED_IN_ERROR]) + more


def find_model(name_or_path: str, settings: Settings) -> Path:
    """An existing file/diffusers folder, or a model name under settings.models_dir."""
    raw = str(name_or_path).strip()
    if not raw:
        raise ModelError("model", name_or_path, "empty; give a model name or path")
    p = Path(raw).expanduser()
    if p.exists():
        if p.is_dir() and not _is_folder_model(p):
            raise ModelError("model", raw, "folder is not a diffusers model (no model_index.json)")
        return p.resolve()
    looks_like_path = "/" in raw or "\\" in raw or raw.startswith((".", "~")) or p.is_absolute()
    models_dir = settings.models_dir
    if looks_like_path:
        raise ModelError("model", raw, "no such file or folder")

    for cand in [models_dir / raw] + [models_dir / (raw + ext) for ext in SAFETENSORS_EXT + PICKLE_EXT]:
        if cand.is_file() or _is_folder_model(cand):
            return cand.resolve()
    if (models_dir / raw).is_dir():
        raise ModelError("model", raw, f"{models_dir / raw} is not a diffusers model (no model_index.json)")

    below = [c for c in candidates(models_dir) if c.name == raw or (c.is_file() and c.stem == raw)]
    if len(below) == 1:
        return below[0].resolve()
    if len(below) > 1:
        listed = ", ".join(c.relative_to(models_dir).as_posix() for c in below)
        raise ModelError("model", raw, f"ambiguous, several models have this name: {listed}; give the path")
    raise ModelError("model", raw, "no model of that name; " + _available_text(models_dir))


def list_models(settings: Settings, errors: list[tuple[Path, str]] | None = None) -> list[ModelInfo]:
    """Every usable model under models_dir, sorted by name. Files that are not usable models are
    left out; pass `errors` to receive (path, reason) for each of them."""
    out: list[ModelInfo] = []
    for p in candidates(settings.models_dir):
        try:
            out.append(inspect_model(p))
        except ModelError as e:
            log.debug("skipping %s: %s", p, e.why)
            if errors is not None:
                errors.append((p, e.why))
    return sorted(out, key=lambda i: (i.name.lower(), str(i.path)))
