"""A1111 prompt syntax, any text: the only exception is BadInput naming the prompt.

- parse_emphasis: fragments with finite weights (BREAK aside);
- prompt_schedule: one entry per distinct text, end steps rising to the last step;
- check_prompt (what steady.request.check runs): refuses exactly what the two above would refuse;
- wildcards and X/Y axes (steady.prompts.variants): BadInput naming prompt, x or y, or variants.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from steady.errors import BadInput
from steady.params import GenerationRequest
from steady.prompts.schedule import check_prompt, prompt_schedule
from steady.prompts.syntax import BREAK, parse_emphasis
from steady.prompts.variants import axes_of, expand
from tests.fixtures.fuzz import A1111_TEXT, SOME_TEXT, fuzz_settings

NUMBER = st.one_of(st.integers(-5, 200).map(str), st.floats(allow_nan=False).map(repr), st.just("9" * 400),
                   st.sampled_from(["0.5", ".5", "1.", "-0", "+3", "1e5", "inf"]))  # fmt: skip


@st.composite
def prompt(draw) -> str:
    """Text with A1111's constructs, nested: (x:w), [from:to:when], [a|b], {a|b}, BREAK, escapes."""
    word = st.sampled_from(["red", "a cat", " ", "", "BREAK", "\\(", "\\[", "16:9", "__colors__", ","]) | SOME_TEXT

    def wrap(inner):
        return st.one_of(
            st.tuples(inner, NUMBER).map(lambda t: f"({t[0]}:{t[1]})"),
            inner.map(lambda t: f"({t})"), inner.map(lambda t: f"[{t}]"),
            st.tuples(inner, inner, NUMBER).map(lambda t: f"[{t[0]}:{t[1]}:{t[2]}]"),
            st.tuples(inner, NUMBER).map(lambda t: f"[{t[0]}:{t[1]}]"),
            st.lists(inner, min_size=2, max_size=3).map(lambda t: "[" + "|".join(t) + "]"),
            st.lists(inner, min_size=2, max_size=3).map(lambda t: "{" + "|".join(t) + "}"),
            st.lists(inner, max_size=3).map(" ".join),
        )  # fmt: skip

    return draw(st.recursive(word, wrap, max_leaves=10) | A1111_TEXT)


DEEP = st.integers(90, 400).flatmap(lambda n: st.sampled_from(["(" * n + "a" + ")" * n, "[" * n + "a|b" + "]" * n,
                                                              "(a" * n, "[" * n + "a:b:1" + "]" * n]))  # fmt: skip


@fuzz_settings(400)
@given(st.one_of(prompt(), DEEP, SOME_TEXT))
def test_emphasis_weights_are_finite_or_bad_input(text):
    try:
        fragments = parse_emphasis(text)
    except BadInput as exc:
        assert exc.argument == "prompt" and "\n" not in str(exc)
        return
    for fragment in fragments:
        assert fragment is BREAK or math.isfinite(fragment.weight), fragment  # A1111 takes (word:-1) too


@fuzz_settings(400)
@given(st.one_of(prompt(), DEEP, SOME_TEXT), st.integers(1, 150))
def test_schedules_cover_every_step_or_are_bad_input(text, steps):
    try:
        schedule = prompt_schedule(text, steps)
    except BadInput as exc:
        assert exc.argument == "prompt"
        return
    ends = [entry.end_step for entry in schedule]
    assert ends == sorted(set(ends)) and ends[-1] == steps and ends[0] >= 1


def _worker_parses(text: str, steps: int) -> bool:
    """What the worker does with a prompt: its schedule, then each text's emphasis."""
    try:
        for entry in prompt_schedule(text, steps):
            parse_emphasis(entry.text)
    except BadInput:
        return False
    return True


@fuzz_settings(400)
@given(st.one_of(prompt(), DEEP, SOME_TEXT), st.sampled_from(["prompt", "negative_prompt"]), st.integers(1, 40))
def test_check_prompt_refuses_exactly_what_the_worker_would(text, name, steps):
    """steady.request.check calls check_prompt, so a prompt the worker cannot weight is refused
    before it is queued, naming the field; and nothing the worker can weight is refused."""
    try:
        check_prompt(text, name, steps)
    except BadInput as exc:
        assert exc.argument == name and "\n" not in str(exc)
        assert not _worker_parses(text, steps)
        return
    assert _worker_parses(text, steps)


AXIS = st.one_of(
    st.tuples(st.sampled_from(["Prompt S/R", "Seed", "CFG", "Steps", "Sampler", "Nope", ""]),
              st.lists(SOME_TEXT | NUMBER, max_size=4)).map(lambda t: f"{t[0]}: " + ", ".join(t[1])),
    SOME_TEXT,
)  # fmt: skip


@fuzz_settings(200)
@given(prompt(), st.one_of(st.just(""), AXIS), st.one_of(st.just(""), AXIS), st.integers(1, 5))
def test_variants_are_made_or_bad_input(tmp_path_factory, text, x, y, n):
    wildcards = tmp_path_factory.mktemp("wildcards")
    (wildcards / "colors.txt").write_text("red\ngreen\n")
    request = GenerationRequest(text or "x", x_axis=x, y_axis=y if x else "", n_images=n, max_images=30)
    try:
        request = request.validate()
        axes_of(request)
        variants = expand(request, 7, wildcards)
    except BadInput as exc:
        assert exc.argument in ("prompt", "x", "y", "x_axis", "y_axis", "n_images") and "\n" not in str(exc)
        return
    assert len(variants) in (0, n) or x
