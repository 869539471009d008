"""The model used when no --model is given.

The embedded tiny model (steady/tiny/weights, trained by `python -m steady.tiny.train`, shipped
as package data) is the default. Should the package lack it (a stripped install), the default
falls back to a tiny random-weight model in the real Stable Diffusion 1.x architecture, built
once (deterministically, seed 0) under the models folder: every code path runs offline, but its
images are noise.
"""

from __future__ import annotations

from pathlib import Path

from steady.config import Settings

RANDOM_MODEL_NAME = "steady-tiny-random"
EMBEDDED_MODEL_NAME = "steady-tiny"  # the shipped folder is called weights/; users see this name
# The embedded model's CFG when the user gives none: the scale it was trained and evaluated at. Measured
# on the shipped weights (docs/tiny-model.md, session 13): short prompts' named shape 91/128 at CFG 5,
# 75/128 at 7 (every other checkpoint's default); eval-tiny mean score 0.966 at 5, 0.941 at 7.
EMBEDDED_CFG_SCALE = 5.0


def embedded_model_path() -> Path:
    return Path(__file__).resolve().parent.parent / "tiny" / "weights"


def embedded_judge_path() -> Path:
    """The tiny world's CLIP model (`python -m steady.tiny.judge`), config `scorer = "tiny-clip"`."""
    return Path(__file__).resolve().parent.parent / "tiny" / "judge_weights"


def clip_folder(value: str) -> str:
    """A CLIP scorer setting as a folder path: "tiny-clip" is the judge shipped for the embedded
    model's world; anything else is a path (~ expanded)."""
    return str(embedded_judge_path()) if value == "tiny-clip" else str(Path(value).expanduser())


def resolve_default_model(cfg: Settings) -> Path:
    embedded = embedded_model_path()
    if (embedded / "model_index.json").is_file():
        return embedded
    target = cfg.models_dir / RANDOM_MODEL_NAME
    if not (target / "model_index.json").is_file():
        from steady.worker.random_model import save_random_folder

        save_random_folder(target, arch="sd1", seed=0)
    return target
