"""Turn `--model NAME_OR_PATH` into a path, and list the models a user has.

A name is looked up in settings.models_dir (STEADY_MODELS or <home>/models): NAME as given,
NAME.safetensors, NAME.ckpt (and .pt/.pth), or a diffusers folder NAME/ with model_index.json;
failing those, a unique file or folder of that name anywhere below models_dir (A1111 users keep
sub-folders). Errors name the argument `model` and list what is available.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from steady.config import Settings
from steady.errors import ModelError
from steady.models.detect import PICKLE_EXT, SAFETENSORS_EXT, ModelInfo, inspect_model

log = logging.getLogger(__name__)

# .bin files in a models folder are more often other things (embeddings, VAEs); a .bin
# checkpoint can still be used by path or full name.
LISTED_EXT = SAFETENSORS_EXT + (".ckpt", ".pt", ".pth")
_MAX_LISTED_IN_ERROR = 20


# The walk's bounds: A1111 users keep a few levels of sub-folders; a link into a big tree must not
# turn a listing into a walk of the filesystem.
MAX_DEPTH = 8  # folders below models_dir
MAX_FOLDERS = 5000


def _is_folder_model(p: Path) -> bool:
    try:
        return p.is_dir() and (p / "model_index.json").is_file()
    except OSError:  # a folder we may not look into is not a model we can use
        return False


def candidates(models_dir: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Model files and diffusers folders under models_dir (not descending into those folders).

    Linked folders are followed (an A1111 models folder linked in is common), but each real folder
    is visited once, a link to a folder that holds models_dir (``/``, ``..``) is not entered, the
    walk goes at most MAX_DEPTH folders deep and through at most MAX_FOLDERS folders, and an entry
    that cannot be read is passed over; each of those is added to ``skipped`` as (path, why)."""
    found: list[Path] = []
    note = skipped.append if skipped is not None else (lambda item: None)
    try:
        root = models_dir.resolve()
        if not root.is_dir():
            return found
        seen = {_identity(root)}
    except OSError as exc:
        note((models_dir, f"cannot be read ({exc.strerror or exc})"))
        return found
    stack: list[tuple[Path, int]] = [(models_dir, 0)]
    folders = 0
    while stack:
        d, depth = stack.pop()
        folders += 1
        if folders > MAX_FOLDERS:
            note((d, f"not searched: the scan stops after {MAX_FOLDERS} folders"))
            break
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            note((d, f"cannot be listed ({exc.strerror or exc})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            e = Path(entry.path)
            try:
                is_dir = entry.is_dir()
                if is_dir and _is_folder_model(e):
                    found.append(e)
                elif is_dir:
                    why = _why_not_enter(e, entry, root, depth, seen)
                    if why:
                        note((e, why))
                    else:
                        stack.append((e, depth + 1))
                elif e.suffix.lower() in LISTED_EXT and entry.is_file():
                    found.append(e)
            except OSError as exc:
                note((e, f"cannot be read ({exc.strerror or exc})"))
    return sorted(found, key=lambda p: p.relative_to(models_dir).as_posix().lower())


def _identity(p: Path) -> tuple[int, int]:
    st = os.stat(p)
    return st.st_dev, st.st_ino


def _why_not_enter(p: Path, entry: os.DirEntry[str], root: Path, depth: int, seen: set[tuple[int, int]]) -> str:
    """Why the folder ``p`` is not searched, or "" (it is then marked seen)."""
    if depth + 1 > MAX_DEPTH:
        return f"not searched: deeper than {MAX_DEPTH} folders below the models folder"
    if entry.is_symlink():
        target = p.resolve()
        if root == target or root.is_relative_to(target):
            return f"not searched: links to {target}, which holds the models folder itself"
    identity = _identity(p)
    if identity in seen:
        return "not searched again: the same folder is reached by another link"
    seen.add(identity)
    return ""


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
    try:
        return _find_model(name_or_path, settings)
    except OSError as exc:  # a folder on the way may not be looked into
        raise ModelError("model", name_or_path, f"cannot be read ({exc.strerror or exc})") from exc


def _find_model(name_or_path: str, settings: Settings) -> Path:
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
    """Every usable model under models_dir, sorted by name. Files that are not usable models, and
    folders the scan passed over (candidates), are left out; pass `errors` to receive (path,
    reason) for each of them."""
    out: list[ModelInfo] = []
    for p in candidates(settings.models_dir, errors):
        try:
            out.append(inspect_model(p))
        except ModelError as e:
            log.debug("skipping %s: %s", p, e.why)
            if errors is not None:
                errors.append((p, e.why))
    return sorted(out, key=lambda i: (i.name.lower(), str(i.path)))
