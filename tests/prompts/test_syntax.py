"""A1111 emphasis syntax: the parser, on the cases A1111 documents."""

from __future__ import annotations

import pytest

from steady.prompts.syntax import BREAK, Fragment, parse_emphasis, uses_emphasis


@pytest.mark.parametrize(("prompt", "expected"), [
    ("a red circle", [("a red circle", 1.0)]),
    ("a (red) circle", [("a ", 1.0), ("red", 1.1), (" circle", 1.0)]),
    ("((red))", [("red", 1.21)]),
    ("(red:1.5) [blue]", [("red", 1.5), (" ", 1.0), ("blue", 1 / 1.1)]),
    ("[[faded]]", [("faded", 1 / 1.21)]),
    ("((a:1.5) b)", [("a", 1.65), (" b", 1.1)]),
    (r"a \(literal\) \[x\]", [("a (literal) [x]", 1.0)]),
    ("(open ended", [("open ended", 1.1)]),
    ("ratio 16:9 (x:0.5)", [("ratio 16:9 ", 1.0), ("x", 0.5)]),
])  # fmt: skip
def test_weights(prompt: str, expected: list[tuple[str, float]]) -> None:
    got = parse_emphasis(prompt)
    assert [f.text for f in got] == [e[0] for e in expected]
    assert [f.weight for f in got] == pytest.approx([e[1] for e in expected])


def test_break_splits_and_is_only_a_whole_upper_case_word() -> None:
    assert parse_emphasis("a castle BREAK a (dragon:1.2)") == [Fragment("a castle", 1.0), BREAK, Fragment("a ", 1.0),
                                                               Fragment("dragon", 1.2)]  # fmt: skip
    assert parse_emphasis("BREAKFAST break") == [Fragment("BREAKFAST break", 1.0)]
    assert uses_emphasis("x BREAK y") and uses_emphasis("(x)") and not uses_emphasis("a red circle, 4k")


@pytest.mark.parametrize(("prompt", "why"), [("(a:" + "9" * 400 + ")", "not a finite number"),
                                             ("(" * 8000 + "a", "nest 8000 deep"),
                                             ("(a" * 5000, "nest 5000 deep")])  # fmt: skip
def test_weights_that_are_not_finite_are_bad_input(prompt, why):
    """A weight of 1e400, or 1.1 to the 8000th, made an infinite weight (NaN embeddings); thousands
    of unclosed brackets also took seconds to weight."""
    from steady.errors import BadInput

    with pytest.raises(BadInput) as info:
        parse_emphasis(prompt)
    assert info.value.argument == "prompt" and why in info.value.why
    assert len(str(info.value)) < 300


def test_a_prompt_that_cannot_be_parsed_is_refused_before_it_is_queued(capsys, tmp_path):
    from steady.config import settings
    from tests.fixtures.cli import run_main

    code, out = run_main(["generate", "x", "-N", "(" * 200 + "blurry", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and out.err.startswith("steady: error: negative_prompt=") and "nest 200 deep" in out.err
    assert not settings().db_path.exists() and not (tmp_path / "o").exists()
