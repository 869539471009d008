"""The model used when no --model is given: the embedded tiny model (steady/tiny/weights, trained
by `python -m steady.tiny.train`, shipped as package data). An install that lacks it (a stripped
package) is told so, with what to do, rather than given something else.
"""

from __future__ import annotations

from pathlib import Path

from steady.config import Settings, clip_folder, package_dir
from steady.errors import ModelError

__all__ = ["EMBEDDED_MODEL_NAME", "clip_folder", "embedded_judge_path", "embedded_model_path",
           "resolve_default_model"]  # fmt: skip

EMBEDDED_MODEL_NAME = "steady-tiny"  # the shipped folder is called weights/; users see this name
# Its own settings (steps, CFG 5: the scale it was trained and evaluated at, sampler) are in
# weights/defaults.toml, shipped with the weights (steady.models.defaults).


def embedded_model_path() -> Path:
    return package_dir() / "tiny" / "weights"


def embedded_judge_path() -> Path:
    """The tiny world's CLIP model (`python -m steady.tiny.judge`), config `scorer = "tiny-clip"`."""
    return Path(clip_folder("tiny-clip"))


def resolve_default_model(cfg: Settings) -> Path:
    embedded = embedded_model_path()
    if (embedded / "model_index.json").is_file():
        return embedded
    raise ModelError("model", "(default)", f"the embedded model is missing from this install ({embedded}); "
                                           f"reinstall steady, or pass --model with a checkpoint from {cfg.models_dir}")
