"""Where things live. Nothing is read or created at import time.

STEADY_HOME (env) moves everything; otherwise a per-user data folder (platformdirs).
Layout under home:
    config.toml    optional settings, e.g. `models_dir = "~/stable-diffusion-webui/models/Stable-diffusion"`
    models/        checkpoints found by `--model NAME` (unless models_dir or STEADY_MODELS says otherwise)
    loras/         LoRA files found by `<lora:NAME:W>` in a prompt (unless lora_dir says otherwise)
    embeddings/    textual-inversion embeddings, used where their name is a word of a prompt (embeddings_dir)
    vae/           VAE files found by `--vae NAME` (vae_dir)
    upscalers/     upscaler models (upscaler_dir)
    styles.csv     A1111 prompt styles, `--style NAME` (styles_file)

`a1111_dir = "~/stable-diffusion-webui"` points all of them at an A1111 (or Forge) folder in one
line: models/Stable-diffusion, models/Lora, models/VAE, embeddings, styles.csv, models/ESRGAN.
A setting of its own (`lora_dir = ...`) wins over what a1111_dir says. The same settings are
options of the commands that use them (`--lora-dir`, `--a1111-dir`, ...: Settings.with_folders);
an option wins over config.toml, and within each level a folder's own setting wins over a1111_dir.
    outputs/       YYYY-MM-DD/ folders of generated PNGs
    catalog.db     SQLite catalog (WAL)
    cache/         derived data (model configs, thumbnails, OpenVINO's converted UNets)

`backend = "openvino"` makes OpenVINO run the UNet when a request does not say (`--backend`).
`vram_limit_gib = 4` caps what steady's worker takes of a GPU (the plan's budget, and torch's
allocator: ComfyUI's --reserve-vram and Forge's GPU-weights limit, said the other way round).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from steady.errors import BadInput, check_text

CONFIG_KEYS = ("models_dir", "scorer", "lora_dir", "embeddings_dir", "vae_dir", "styles_file", "upscaler_dir", "a1111_dir",
               "backend", "vram_limit_gib")
NUMBER_KEYS = ("vram_limit_gib",)  # the others are text
# Where each setting points inside an A1111 folder (a1111_dir), and its default under STEADY_HOME.
A1111_LAYOUT = {"models_dir": "models/Stable-diffusion", "lora_dir": "models/Lora", "vae_dir": "models/VAE",
                "embeddings_dir": "embeddings", "styles_file": "styles.csv", "upscaler_dir": "models/ESRGAN"}
_HOME_LAYOUT = {"models_dir": "models", "lora_dir": "loras", "vae_dir": "vae", "embeddings_dir": "embeddings",
                "styles_file": "styles.csv", "upscaler_dir": "upscalers"}


def home() -> Path:
    env = os.environ.get("STEADY_HOME")
    if env:
        check_text("STEADY_HOME", env)  # the catalog stores paths under it as text
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("steady", appauthor=False))


FOLDER_KEYS = ("models_dir", "lora_dir", "embeddings_dir", "vae_dir", "styles_file", "upscaler_dir", "a1111_dir")


@dataclass(frozen=True)
class Settings:
    home: Path
    # Folder settings given as command options (FOLDER_KEYS), ahead of STEADY_MODELS and config.toml.
    given: tuple[tuple[str, str], ...] = ()

    def with_folders(self, **values: str | None) -> Settings:
        """These settings with the folder settings given (None or "": not given) ahead of the rest."""
        unknown = sorted(set(values) - set(FOLDER_KEYS))
        if unknown:
            raise ValueError(f"not a folder setting: {unknown[0]}")
        for key, value in values.items():
            if value:
                check_text(key, value)
        given = dict(self.given) | {k: v for k, v in values.items() if v}
        return replace(self, given=tuple(sorted(given.items())))

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def models_dir(self) -> Path:
        """--models-dir (or --a1111-dir), else STEADY_MODELS, else `models_dir` in config.toml, else home/models."""
        given = dict(self.given)
        if given.get("models_dir") or given.get("a1111_dir"):
            return self._place("models_dir")
        env = os.environ.get("STEADY_MODELS")
        if env:
            check_text("STEADY_MODELS", env)
            return Path(env).expanduser()
        return self._place("models_dir")

    @property
    def lora_dir(self) -> Path:
        """`lora_dir` in config.toml (an A1111 `models/Lora` folder, say), else a1111_dir's, else home/loras."""
        return self._place("lora_dir")

    @property
    def lora_dirs(self) -> tuple[Path, ...]:
        """Where LoRA files are looked for: lora_dir, and A1111's models/LyCORIS beside it when
        a1111_dir set the LoRA folder (the LyCORIS extension's folder, which A1111 also reads)."""
        a1111 = self._a1111_for("lora_dir")
        return (self.lora_dir,) if a1111 is None else (self.lora_dir, a1111 / "models" / "LyCORIS")

    @property
    def embeddings_dir(self) -> Path:
        """`embeddings_dir`, else a1111_dir's `embeddings`, else home/embeddings."""
        return self._place("embeddings_dir")

    @property
    def vae_dir(self) -> Path:
        """`vae_dir`, else a1111_dir's `models/VAE`, else home/vae."""
        return self._place("vae_dir")

    @property
    def styles_file(self) -> Path:
        """`styles_file`, else a1111_dir's `styles.csv`, else home/styles.csv."""
        return self._place("styles_file")

    @property
    def upscaler_dir(self) -> Path:
        """`upscaler_dir`, else a1111_dir's `models/ESRGAN`, else home/upscalers."""
        return self._place("upscaler_dir")

    def _place(self, key: str) -> Path:
        """A folder or file setting: its own option, else its place in --a1111-dir, else its own
        value in config.toml, else its place in config's a1111_dir, else its place under home."""
        for level in (dict(self.given), read_config(self.config_path)):
            if level.get(key):
                return Path(level[key]).expanduser()
            if level.get("a1111_dir"):
                return Path(level["a1111_dir"]).expanduser() / A1111_LAYOUT[key]
        return self.home / _HOME_LAYOUT[key]

    def _a1111_for(self, key: str) -> Path | None:
        """The A1111 folder that set ``key``'s place (None when a setting of its own or home did)."""
        for level in (dict(self.given), read_config(self.config_path)):
            if level.get(key):
                return None
            if level.get("a1111_dir"):
                return Path(level["a1111_dir"]).expanduser()
        return None

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
    def backend(self) -> str:
        """What runs the UNet when a request does not say (`backend = "openvino"`): "torch" by
        default; steady.request.check checks the value."""
        return read_config(self.config_path).get("backend") or "torch"

    @property
    def vram_limit(self) -> int | None:
        """Bytes of GPU memory steady's worker may take (`vram_limit_gib` in config.toml); None: what
        the GPU has free. The plan budgets within it and the worker caps torch's allocator at it."""
        value = read_config(self.config_path).get("vram_limit_gib")
        return None if value is None else int(value * 2**30)

    @property
    def inputs_dir(self) -> Path:
        """Init images and masks, stored by their sha256 (steady.images.inputs)."""
        return self.home / "inputs"

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
    for key in CONFIG_KEYS:
        if key not in data:
            continue
        if key in NUMBER_KEYS:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1024:
                raise BadInput(key, value, f"must be a number of GiB above 0 (e.g. 4 or 5.5) in {path}")
        elif not isinstance(data[key], str):
            raise BadInput(key, data[key], f"must be text in {path}")
    return data
