"""A1111's LoRA tags: read as A1111 reads them, taken out of the text the encoder sees."""

from __future__ import annotations

import pytest

from steady.errors import BadInput
from steady.prompts.lora import has_lora_tags, lora_tags, strip_lora_tags
from steady.prompts.schedule import prompt_schedule


def weights(text):
    return [(t.name, t.te, t.unet) for t in lora_tags(text, "prompt")]


@pytest.mark.parametrize("text,expected", [
    ("a cat <lora:film>", [("film", 1.0, 1.0)]),
    ("a cat <lora:film:0.8>", [("film", 0.8, 0.8)]),
    ("a cat <lora:film:0.8:0.3>", [("film", 0.8, 0.3)]),  # A1111's order: text encoder, then UNet
    ("a cat <lora:film:te=0.2:unet=0.9>", [("film", 0.2, 0.9)]),
    ("a cat <lora:film:0.5:unet=0>", [("film", 0.5, 0.0)]),  # the named value wins
    ("a cat <lora:film:unet=0.4>", [("film", 1.0, 0.4)]),
    ("<lyco:grain:-0.5>", [("grain", -0.5, -0.5)]),  # LyCORIS' spelling; negative weights are A1111's too
    ("<lora:styles/film v2: 1e-1>", [("styles/film v2", 0.1, 0.1)]),
    ("<lora:a:1>, <lora:b:0.5> and <lora:a:0.25>", [("a", 1.0, 1.0), ("b", 0.5, 0.5), ("a", 0.25, 0.25)]),
    ("no tags (here:1.2) [a:b:0.5] <other:x:1>", []),
])  # fmt: skip
def test_tags_are_read_as_a1111_reads_them(text, expected):
    assert weights(text) == expected
    assert has_lora_tags(text) == bool(expected)


def test_the_tag_as_written_and_ignored_options():
    [tag] = lora_tags("x <lora:film:0.7:dyn=8>", "negative_prompt")
    assert tag.text == "<lora:film:0.7:dyn=8>"
    assert tag.ignored == ("dyn=8",)


@pytest.mark.parametrize("text,why", [
    ("<lora::1>", "has no name"),
    ("<lora: :1>", "has no name"),
    ("<lora:film:strong>", "'strong' is not a number"),
    ("<lora:film:inf>", "is not a finite number"),
    ("<lora:film:nan>", "is not a finite number"),
    ("<lora:film:te=x>", "'x' is not a number"),
    ("<lora:film:1:1:1>", "at most two weights"),
])  # fmt: skip
def test_a_bad_tag_is_refused_naming_the_argument_and_the_tag(text, why):
    with pytest.raises(BadInput) as info:
        lora_tags(f"a cat {text}", "negative_prompt")
    assert info.value.argument == "negative_prompt"
    assert info.value.value == text
    assert why in info.value.why


def test_the_text_encoder_reads_the_prompt_without_its_tags():
    assert strip_lora_tags("a cat <lora:film:0.8>, (grain:1.2) <lyco:x>") == "a cat , (grain:1.2) "
    assert strip_lora_tags("nothing to take") == "nothing to take"
    # Taken out before prompt editing reads the text, as A1111 does: a ':' or ']' in a tag's name
    # does not become part of a schedule.
    stripped = strip_lora_tags("a [red:blue:0.5] cat <lora:a]b:1>")
    assert [s.text for s in prompt_schedule(stripped, 10)] == ["a red cat ", "a blue cat "]


def test_check_reads_the_prompt_syntax_without_the_tags(tmp_path):
    """A LoRA named with A1111's brackets in it is not prompt editing to check (A1111 takes the
    tags out before it reads the syntax); the name is then looked up, and the missing one named."""
    from steady.config import settings
    from steady.params import GenerationRequest
    from steady.request.check import check

    from steady.prompts.syntax import MAX_NESTING

    name = "style " + "(" * (MAX_NESTING + 1)  # as emphasis, brackets nested too deep to take
    with pytest.raises(BadInput) as info:
        check(GenerationRequest(prompt=f"a cat <lora:{name}:1>", out_dir=str(tmp_path)), settings())
    assert info.value.argument == "prompt" and f"no LoRA named {name!r}" in info.value.why
