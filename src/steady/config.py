"""Where things live. Nothing is read or created at import time.

STEADY_HOME (env) moves everything; otherwise a per-user data folder (platformdirs).
Layout under home:
    models/        checkpoints found by `--model NAME`
    outputs/       YYYY-MM-DD/ folders of generated PNGs
    catalog.db     SQLite catalog (WAL)
    cache/         derived data (model configs, thumbnails)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def home() -> Path:
    env = os.environ.get("STEADY_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("steady", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path

    @property
    def models_dir(self) -> Path:
        env = os.environ.get("STEADY_MODELS")
        return Path(env).expanduser() if env else self.home / "models"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"

    @property
    def db_path(self) -> Path:
        return self.home / "catalog.db"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


def settings() -> Settings:
    return Settings(home=home())
