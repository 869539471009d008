"""Where things live. Nothing is read or created at import time.

STEADY_HOME (env) moves everything; otherwise a per-user data folder (platformdirs).
Layout under home:
    config.toml    optional settings, e.g. `models_dir = "~/stable-diffusion-webui/models/Stable-diffusion"`
    models/        checkpoints found by `--model NAME` (unless models_dir or STEADY_MODELS says otherwise)
    loras/         LoRA files found by `<lora:NAME:W>` in a prompt (unless lora_dir says otherwise)
    outputs/       YYYY-MM-DD/ folders of generated PNGs
    catalog.db     SQLite catalog (WAL)
    cache/         derived data (model configs, thumbnails)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steady.errors import BadInput, check_text

CONFIG_KEYS = ("models_dir", "scorer", "lora_dir")


def home() -> Path:
    env = os.environ.get("STEADY_HOME")
    if env:
        check_text("STEADY_HOME", env)  # the catalog stores paths under it as text
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("steady", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def models_dir(self) -> Path:
        """STEADY_MODELS, else `models_dir` in config.toml, else home/models."""
        env = os.environ.get("STEADY_MODELS")
        if env:
            check_text("STEADY_MODELS", env)
            return Path(env).expanduser()
        configured = read_config(self.config_path).get("models_dir")
        return Path(configured).expanduser() if configured else self.home / "models"

    @property
    def lora_dir(self) -> Path:
        """`lora_dir` in config.toml (an A1111 `models/Lora` folder, say), else home/loras."""
        configured = read_config(self.config_path).get("lora_dir")
        return Path(configured).expanduser() if configured else self.home / "loras"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"

    @property
    def db_path(self) -> Path:
        return self.home / "catalog.db"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def scorer(self) -> str:
        """How images are scored for prompt adherence: "model" (the generating model itself, the
        default), the path of a local CLIP model folder (`scorer = "~/models/clip-vit-large"`), or
        "tiny-clip" (the CLIP model shipped for the embedded model's world), as a folder."""
        value = read_config(self.config_path).get("scorer", "model")
        return value if value == "model" else clip_folder(value)

    @property
    def trash_dir(self) -> Path:
        return self.home / "trash"

    @property
    def thumbs_dir(self) -> Path:
        return self.cache_dir / "thumbs"


def package_dir() -> Path:
    """The installed package's folder (the embedded model and shipped configs live under it)."""
    return Path(__file__).resolve().parent


def clip_folder(value: str) -> str:
    """A CLIP scorer setting as a folder path: "tiny-clip" is the judge shipped for the embedded
    model's world (steady/tiny/judge_weights); anything else is a path (~ expanded)."""
    return str(package_dir() / "tiny" / "judge_weights") if value == "tiny-clip" else str(Path(value).expanduser())


def settings() -> Settings:
    return Settings(home=home())


def read_config(path: Path) -> dict[str, Any]:
    """The settings in config.toml ({} when there is none). Unknown keys or bad TOML: BadInput."""
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput("config", str(path), f"cannot be read as TOML ({exc})") from exc
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise BadInput("config", str(path), f"unknown setting {unknown[0]!r}; known: {', '.join(CONFIG_KEYS)}")
    for key in ("models_dir", "scorer", "lora_dir"):
        if key in data and not isinstance(data[key], str):
            raise BadInput(key, data[key], f"must be text in {path}")
    return data
