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


def test_the_scan_does_not_follow_links_out_of_bounds(models_dir, tmp_path, capsys):
    """A link to / or .. in the models folder made `steady models` and --model NAME walk the whole
    filesystem; links are followed only into folders that do not hold the models folder, each real
    folder once, at most MAX_DEPTH deep."""
    import time

    from steady.models.resolve import MAX_DEPTH, candidates
    from tests.fixtures.cli import run_main

    save_tiny_single_file("sd1", models_dir / "own.safetensors")
    shared = tmp_path / "a1111" / "Stable-diffusion"  # an A1111 folder linked in: followed
    save_tiny_single_file("sd1", shared / "linked.safetensors")
    (models_dir / "a1111").symlink_to(shared)
    (models_dir / "again").symlink_to(shared)  # the same folder by a second link: searched once
    (shared / "loop").symlink_to(shared)
    (models_dir / "root").symlink_to("/")
    (models_dir / "up").symlink_to("..")
    (models_dir / "self").symlink_to(models_dir)
    deep = models_dir.joinpath(*[f"d{i}" for i in range(MAX_DEPTH + 1)])
    deep.mkdir(parents=True)
    (deep / "buried.safetensors").write_bytes(b"x")
    skipped = []
    started = time.monotonic()
    found = candidates(models_dir, skipped)
    assert time.monotonic() - started < 5
    assert sorted(p.name for p in found) == ["linked.safetensors", "own.safetensors"]
    reasons = {p.name: why for p, why in skipped}
    assert {"root", "up", "self"} <= set(reasons) and "holds the models folder" in reasons["root"]
    assert "another link" in reasons["again"] and "another link" in reasons["loop"]
    assert f"deeper than {MAX_DEPTH}" in reasons[f"d{MAX_DEPTH}"]
    assert find_model("linked", settings()).name == "linked.safetensors"
    code, out = run_main(["models", "--no-hash"], capsys)
    assert code == 0 and "own" in out.out and "linked" in out.out
    assert "steady: note:" in out.err and "holds the models folder" in out.err


def test_the_scan_passes_over_what_it_cannot_read(models_dir, monkeypatch, capsys):
    """A folder that cannot be listed (permission denied) ended `steady models` in a traceback; it
    is passed over with a note (injected: the tests may run as root, whom permissions do not stop)."""
    import os

    from tests.fixtures.cli import run_main

    save_tiny_single_file("sd1", models_dir / "good.safetensors")
    (models_dir / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    skipped = []
    assert [i.name for i in list_models(settings(), skipped)] == ["good"]
    assert [(p.name, why) for p, why in skipped] == [("locked", "cannot be listed (Permission denied)")]
    code, out = run_main(["models", "--no-hash"], capsys)
    assert code == 0 and "good" in out.out and "locked: cannot be listed" in out.err


def test_a_fifo_is_not_read_as_a_model(models_dir, capsys):
    """Reading a FIFO waits for a writer: a model path that is not a regular file is refused."""
    import os

    from steady.models.detect import inspect_model
    from tests.fixtures.cli import run_main

    fifo = models_dir / "pipe.safetensors"
    os.mkfifo(fifo)
    assert list_models(settings()) == []
    with pytest.raises(ModelError, match="not a regular file"):
        inspect_model(fifo)
    code, out = run_main(["generate", "x", "-m", str(fifo)], capsys)
    assert code == 2 and "not a regular file" in out.err
