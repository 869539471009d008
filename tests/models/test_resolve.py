"""find_model by path and by name; list_models for `steady models`."""

from __future__ import annotations

import pytest

from steady.config import settings
from steady.errors import ModelError
from steady.models.resolve import find_model, list_models
from tests.fixtures.tiny_models import save_tiny_folder, save_tiny_single_file


@pytest.fixture
def models_dir():
    d = settings().models_dir
    d.mkdir(parents=True)
    return d


def test_by_path(tmp_path, models_dir):
    f = save_tiny_single_file("sd1", tmp_path / "elsewhere" / "a.safetensors")
    assert find_model(str(f), settings()) == f.resolve()
    folder = save_tiny_folder("sd1", tmp_path / "pipe")
    assert find_model(str(folder), settings()) == folder.resolve()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model_index.json"):
        find_model(str(tmp_path / "empty"), settings())
    with pytest.raises(ModelError, match="no such file") as e:
        find_model(str(tmp_path / "missing.safetensors"), settings())
    assert e.value.argument == "model"


def test_by_name(models_dir):
    (models_dir / "alpha.safetensors").write_bytes(b"x")
    (models_dir / "beta.ckpt").write_bytes(b"x")
    (models_dir / "gamma").mkdir()
    (models_dir / "gamma" / "model_index.json").write_text("{}")
    (models_dir / "sub").mkdir()
    (models_dir / "sub" / "delta.safetensors").write_bytes(b"x")
    s = settings()
    assert find_model("alpha", s) == (models_dir / "alpha.safetensors").resolve()
    assert find_model("alpha.safetensors", s) == (models_dir / "alpha.safetensors").resolve()
    assert find_model("beta", s) == (models_dir / "beta.ckpt").resolve()
    assert find_model("gamma", s) == (models_dir / "gamma").resolve()
    assert find_model("delta", s) == (models_dir / "sub" / "delta.safetensors").resolve()
    with pytest.raises(ModelError) as e:
        find_model("omega", s)
    msg = str(e.value)
    assert e.value.argument == "model" and "'omega'" in msg
    for name in ("alpha", "beta", "gamma", "sub/delta"):
        assert name in msg


def test_ambiguous_and_empty(models_dir):
    s = settings()
    with pytest.raises(ModelError, match="no models in"):
        find_model("anything", s)
    for sub in ("a", "b"):
        (models_dir / sub).mkdir()
        (models_dir / sub / "same.safetensors").write_bytes(b"x")
    with pytest.raises(ModelError, match="ambiguous"):
        find_model("same", s)
    with pytest.raises(ModelError, match="empty"):
        find_model("  ", s)


def test_list_models_skips_and_reports_bad_files(models_dir):
    save_tiny_single_file("sdxl", models_dir / "xl.safetensors")
    save_tiny_folder("sd2v", models_dir / "two")
    (models_dir / "broken.safetensors").write_bytes(b"\x00\x01")
    (models_dir / "notes.txt").write_text("not a model")
    errors = []
    infos = list_models(settings(), errors)
    assert [(i.name, i.arch, i.format) for i in infos] == [("two", "sd2", "diffusers"), ("xl", "sdxl", "safetensors")]
    assert infos[0].prediction_type == "v_prediction"
    assert [p.name for p, _ in errors] == ["broken.safetensors"]
    assert list_models(settings()) == infos
