"""A1111's styles.csv: read, applied into the prompt, recorded; a missing style is refused."""

from __future__ import annotations

import pytest

from steady.config import settings
from steady.errors import BadInput
from steady.params import GenerationRequest
from steady.prompts.styles import apply_styles, merge, read_styles
from steady.request.check import check

CSV = '''name,prompt,negative_prompt
Cinematic,"cinematic still of {prompt}, film grain","cartoon, {prompt}"
Sharp,"sharp focus, highly detailed",blurry
"Empty",,
,"no name",
'''


def test_read_and_merge_as_a1111(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text(CSV, encoding="utf-8")
    styles = read_styles(path)
    assert list(styles) == ["Cinematic", "Sharp", "Empty"]  # a row without a name is left out
    assert merge("cinematic still of {prompt}", "a cat") == "cinematic still of a cat"
    assert merge("sharp focus", "a cat ") == "a cat, sharp focus"
    assert merge("sharp focus", "") == "sharp focus"
    assert apply_styles("a cat", "", ["Cinematic", "Sharp"], styles) == (
        "cinematic still of a cat, film grain, sharp focus, highly detailed", "cartoon,, blurry")  # A1111 strips, then joins
    with pytest.raises(BadInput) as info:
        apply_styles("a cat", "", ["cinematc"], styles, path)
    assert "closest: Cinematic" in str(info.value) and "style" in str(info.value)


def test_styles_in_a_request_are_applied_and_named():
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.styles_file.write_text(CSV, encoding="utf-8")
    resolved = check(GenerationRequest("a cat", styles="Sharp\nCinematic", steps=2), cfg)
    params = resolved.image_params(0)
    assert params.prompt == "cinematic still of a cat, sharp focus, highly detailed, film grain"
    assert resolved.request.styles == "Sharp\nCinematic"
    assert params.negative_prompt == "cartoon, blurry"
    assert params.extra["styles"] == ["Sharp", "Cinematic"]
    with pytest.raises(BadInput, match="no style named 'Nope'"):
        check(GenerationRequest("a cat", styles="Nope"), cfg)


def test_cli_style_option_and_exit_2(capsys):
    from tests.fixtures.cli import run_main

    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.styles_file.write_text(CSV, encoding="utf-8")
    code, out = run_main(["generate", "a cat", "--style", "Sharpp", "--steps", "1"], capsys)
    assert code == 2 and "closest: Sharp" in out.err and len(out.err.strip().splitlines()) == 1
