"""Where things live: STEADY_HOME, config.toml's models_dir, STEADY_MODELS."""

import pytest

from steady.config import settings
from steady.errors import BadInput


def test_home_and_default_models_dir(_isolated_home):
    cfg = settings()
    assert cfg.home == _isolated_home
    assert cfg.models_dir == _isolated_home / "models"
    assert cfg.db_path.parent == _isolated_home


def test_models_dir_from_config_then_env(_isolated_home, tmp_path, monkeypatch):
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text(f'models_dir = "{tmp_path / "webui-models"}"\n')
    assert settings().models_dir == tmp_path / "webui-models"
    monkeypatch.setenv("STEADY_MODELS", str(tmp_path / "env-models"))
    assert settings().models_dir == tmp_path / "env-models"


@pytest.mark.parametrize("text,needle", [("models_dir = 3\n", "models_dir=3"), ("colour = 'red'\n", "unknown setting 'colour'"),
                                         ("models_dir = \n", "cannot be read as TOML")])
def test_bad_config_is_named(_isolated_home, text, needle):
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text(text)
    with pytest.raises(BadInput) as info:
        settings().models_dir
    assert needle in str(info.value)


def test_a1111_dir_sets_every_folder_and_explicit_settings_win(_isolated_home, tmp_path):
    """One line points every folder at an A1111 install; a setting of its own wins over it."""
    webui = tmp_path / "stable-diffusion-webui"
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text(f'a1111_dir = "{webui}"\nvae_dir = "{tmp_path / "my-vaes"}"\n')
    cfg = settings()
    assert cfg.models_dir == webui / "models" / "Stable-diffusion"
    assert cfg.lora_dir == webui / "models" / "Lora"
    assert cfg.lora_dirs == (webui / "models" / "Lora", webui / "models" / "LyCORIS")
    assert cfg.embeddings_dir == webui / "embeddings"
    assert cfg.styles_file == webui / "styles.csv"
    assert cfg.upscaler_dir == webui / "models" / "ESRGAN"
    assert cfg.vae_dir == tmp_path / "my-vaes"  # explicit wins


def test_default_folders_under_home(_isolated_home):
    cfg = settings()
    assert (cfg.lora_dir, cfg.embeddings_dir, cfg.vae_dir, cfg.styles_file, cfg.upscaler_dir) == (
        _isolated_home / "loras", _isolated_home / "embeddings", _isolated_home / "vae",
        _isolated_home / "styles.csv", _isolated_home / "upscalers")
    assert cfg.lora_dirs == (cfg.lora_dir,)


def test_a1111_dir_must_be_text(_isolated_home):
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text("a1111_dir = 1\n")
    with pytest.raises(BadInput, match="a1111_dir"):
        settings().lora_dir


def test_folder_options_win_over_env_and_config(_isolated_home, tmp_path, monkeypatch):
    """Options (Settings.with_folders) come first: their own folder, then their a1111_dir; then
    STEADY_MODELS; then config.toml in the same order."""
    webui, other = tmp_path / "webui", tmp_path / "other-webui"
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text(f'a1111_dir = "{other}"\nlora_dir = "{tmp_path / "cfg-loras"}"\n')
    monkeypatch.setenv("STEADY_MODELS", str(tmp_path / "env-models"))
    cfg = settings()
    assert (cfg.models_dir, cfg.lora_dir, cfg.vae_dir) == (tmp_path / "env-models", tmp_path / "cfg-loras", other / "models" / "VAE")
    assert cfg.lora_dirs == (tmp_path / "cfg-loras",)
    given = cfg.with_folders(a1111_dir=str(webui), vae_dir=str(tmp_path / "v"), lora_dir=None)
    assert given.models_dir == webui / "models" / "Stable-diffusion"
    assert given.lora_dirs == (webui / "models" / "Lora", webui / "models" / "LyCORIS")
    assert given.vae_dir == tmp_path / "v"
    assert given.styles_file == webui / "styles.csv"
    assert cfg.vae_dir == other / "models" / "VAE"  # the original is unchanged (frozen)
    with pytest.raises(BadInput, match="lora_dir"):
        cfg.with_folders(lora_dir="a\0b")


@pytest.mark.parametrize("text", ['vram_limit_gib = "4"\n', "vram_limit_gib = 0\n", "vram_limit_gib = true\n",
                                  "vram_limit_gib = -2\n"])
def test_a_bad_vram_limit_is_named(_isolated_home, text):
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text(text)
    with pytest.raises(BadInput) as info:
        settings().vram_limit
    assert info.value.argument == "vram_limit_gib" and "number of GiB" in str(info.value)


def test_the_vram_limit_is_read_in_gib(_isolated_home):
    assert settings().vram_limit is None
    _isolated_home.mkdir(parents=True)
    (_isolated_home / "config.toml").write_text("vram_limit_gib = 4.5\n")
    assert settings().vram_limit == int(4.5 * 2**30)
