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
