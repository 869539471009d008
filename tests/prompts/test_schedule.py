"""A1111 prompt editing `[from:to:when]` and alternation `[a|b]`: which text each step uses."""

from __future__ import annotations

import pytest

from steady.prompts.schedule import Scheduled, prompt_schedule, text_at


def per_step(prompt: str, steps: int) -> list[str]:
    schedule = prompt_schedule(prompt, steps)
    return [schedule[text_at(schedule, i)].text for i in range(steps)]


def test_editing_switches_after_the_step_named_or_the_fraction() -> None:
    # The A1111 wiki's example: steps 1-16 from, 17 on to.
    assert per_step("a [fantasy:cyberpunk:16] landscape", 20) == ["a fantasy landscape"] * 16 + ["a cyberpunk landscape"] * 4
    assert per_step("a [dog:cat:0.25] x", 8) == ["a dog x"] * 2 + ["a cat x"] * 6  # 0.25 of 8 steps = step 2
    assert per_step("a [big:2] dog", 4) == ["a  dog"] * 2 + ["a big dog"] * 2  # added after step 2
    assert per_step("a [big::2] dog", 4) == ["a big dog"] * 2 + ["a  dog"] * 2  # removed after step 2


def test_alternation_changes_every_step_and_combines_with_editing() -> None:
    assert per_step("[red|green|blue] circle", 5) == ["red circle", "green circle", "blue circle", "red circle",
                                                      "green circle"]  # fmt: skip
    assert prompt_schedule("a [dog:cat:0.5] in [snow|rain]", 4) == [
        Scheduled(1, "a dog in snow"), Scheduled(2, "a dog in rain"), Scheduled(3, "a cat in snow"),
        Scheduled(4, "a cat in rain")]  # fmt: skip


def test_emphasis_escapes_and_nesting_are_kept_for_the_weighting_step() -> None:
    assert prompt_schedule("plain (red:1.3) [word] \\[x:y:3\\]", 20) == [
        Scheduled(20, "plain (red:1.3) [word] \\[x:y:3\\]")]
    assert per_step("a [(red:1.2):blue:1] [circle]", 2) == ["a (red:1.2) [circle]", "a blue [circle]"]
    assert per_step("unclosed [a:b:1", 2) == ["unclosed [a:b:1"] * 2  # A1111 emphasis to the end


@pytest.mark.parametrize(("prompt", "expected"), [("a [x|y]", True), ("a [x:y:3]", True), ("a [x:3]", True),
                                                  ("a [x]", False), ("a (x:1.2)", False), ("a [x:y:z]", False)])  # fmt: skip
def test_only_editing_and_alternation_make_a_schedule(prompt: str, expected: bool) -> None:
    assert (prompt_schedule(prompt, 20) != [Scheduled(20, prompt)]) is expected


def test_a_switch_past_any_step_is_never_and_before_any_is_at_once() -> None:
    """[a:b:999…9] (a number too big for a float) raised OverflowError in the worker."""
    huge = "9" * 400
    assert prompt_schedule(f"[a:b:{huge}]", 20) == [Scheduled(20, "a")]
    assert prompt_schedule(f"[a:b:-{huge}]", 20) == [Scheduled(20, "b")]


def test_brackets_nested_too_deep_are_bad_input_not_a_recursion_error() -> None:
    from steady.errors import BadInput
    from steady.prompts.syntax import MAX_NESTING

    assert prompt_schedule("[" * MAX_NESTING + "a|b" + "]" * MAX_NESTING, 2)[-1].text.strip("[]") == "b"
    for prompt in ("[" * 1000 + "a" + "]" * 1000, "[" * 1000 + "a|b" + "]" * 1000):
        with pytest.raises(BadInput) as info:
            prompt_schedule(prompt, 20)
        assert info.value.argument == "prompt" and "nest 1000 deep" in info.value.why


def test_a_text_the_schedule_makes_is_checked_too() -> None:
    """Found by fuzzing: `[(a:|:9…9)]` passes as written, but its alternation makes `(:9…9)`, a
    weight that is not a finite number; check_prompt (run when the request is checked) refuses it."""
    from steady.errors import BadInput
    from steady.prompts.schedule import check_prompt

    text = "[(x:|:" + "9" * 400 + ")]"
    with pytest.raises(BadInput) as info:
        check_prompt(text, "negative_prompt", 2)
    assert info.value.argument == "negative_prompt" and "not a finite number" in info.value.why
    check_prompt("a [(red:1.2)|blue] [cat:dog:0.5]", "prompt", 20)
