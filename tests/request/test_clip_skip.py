"""--clip-skip past the model's text encoder layers is refused when the request is checked (exit 2,
4xx), not by an IndexError in the worker that fails the run."""

from __future__ import annotations

import pytest

from steady.config import settings
from steady.errors import BadInput
from steady.models.default import embedded_model_path
from steady.models.detect import clip_skip_limit, inspect_model, text_layers
from steady.params import GenerationRequest
from steady.request.check import check
from tests.fixtures.tiny_models import save_tiny_folder, save_tiny_single_file


def test_the_limit_follows_each_family_and_format(tmp_path):
    embedded = inspect_model(embedded_model_path())
    assert (text_layers(embedded), clip_skip_limit(embedded)) == (2, 2)
    sd1 = inspect_model(save_tiny_single_file("sd1", tmp_path / "sd1.safetensors"))
    assert (text_layers(sd1), clip_skip_limit(sd1)) == (2, 2)
    xl = inspect_model(save_tiny_folder("sdxl", tmp_path / "xl"))  # SDXL reads one layer earlier already
    assert (text_layers(xl), clip_skip_limit(xl)) == (2, 1)


@pytest.mark.parametrize("skip", [3, 4, 12])
def test_clip_skip_past_the_layers_is_refused_before_anything_is_written(tmp_path, skip):
    out = tmp_path / "out"
    check(GenerationRequest("a red circle", clip_skip=2, out_dir=str(out)), settings())  # the last usable one
    out.rmdir()
    with pytest.raises(BadInput) as info:
        check(GenerationRequest("a red circle", clip_skip=skip, out_dir=str(out)), settings())
    assert info.value.argument == "clip_skip" and info.value.value == skip
    assert "between 1 and 2 for steady-tiny" in info.value.why and "2 layers" in info.value.why
    assert not out.exists()


def test_the_cli_refuses_it_in_one_line(capsys, tmp_path):
    from tests.fixtures.cli import run_main

    code, out = run_main(["generate", "a red circle", "--clip-skip", "4", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and out.err.startswith("steady: error: clip_skip=4:") and len(out.err.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not settings().db_path.exists()
