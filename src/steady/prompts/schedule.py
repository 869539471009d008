"""A1111 prompt editing and alternation: a prompt that changes during sampling.

    prompt_schedule("a [dog:cat:0.5] in [snow|rain]", steps=4)
    -> [Scheduled(1, "a dog in snow"), Scheduled(2, "a dog in rain"), Scheduled(3, "a cat in snow"),
        Scheduled(4, "a cat in rain")]

Syntax, as AUTOMATIC1111 documents it ("Prompt editing", "Alternating words"):
- `[from:to:when]` uses `from` up to step `when` and `to` after it; `[to:when]` adds `to` after
  step `when`; `[from::when]` removes `from` after it. `when` below 1 is a fraction of the steps
  (0.25 of 20 = step 5), otherwise a step number.
- `[a|b|c]` alternates: step 1 uses a, step 2 b, step 3 c, step 4 a, ...
- Anything else in square brackets is A1111 emphasis (`[word]` = weight / 1.1) and is kept, as
  are `(word:1.3)` and `\\[` escapes; they are weighted later (steady.prompts).

Each `Scheduled(end_step, text)` holds for steps (1-based) from the one after the previous
entry's end up to and including `end_step`, as the A1111 wiki describes it: "a [fantasy:cyberpunk:16]
landscape" draws a fantasy landscape for steps 1-16 and a cyberpunk one from step 17. The worker
encodes each distinct text once and swaps the conditioning between steps.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from steady.prompts.syntax import check_syntax

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*")


@dataclass(frozen=True)
class Scheduled:
    end_step: int
    text: str


@dataclass(frozen=True)
class _Edit:
    before: list
    after: list
    when: float


@dataclass(frozen=True)
class _Alternate:
    options: list[list]


def prompt_schedule(prompt: str, steps: int) -> list[Scheduled]:
    """The texts the prompt takes during `steps` sampling steps (one entry if it never changes).
    BadInput (steady.prompts.syntax.check_syntax) for brackets nested too deep to parse."""
    check_syntax(prompt)
    tree = _parse(prompt)
    nodes = list(_walk(tree))
    if not any(isinstance(n, _Edit | _Alternate) for n in nodes):
        return [Scheduled(steps, prompt)]
    if any(isinstance(n, _Alternate) for n in nodes):
        boundaries = set(range(1, steps + 1))
    else:
        boundaries = {_step(n.when, steps) for n in nodes if isinstance(n, _Edit)} | {steps}
    schedule: list[Scheduled] = []
    for step in sorted(b for b in boundaries if 1 <= b <= steps):
        text = _render(tree, step, steps)
        if schedule and schedule[-1].text == text:
            schedule[-1] = Scheduled(step, text)
        else:
            schedule.append(Scheduled(step, text))
    return schedule


def check_prompt(prompt: str, name: str, steps: int) -> None:
    """BadInput naming ``name`` when the worker could not weight the prompt: its own syntax, or a
    text its schedule makes (``[(a:|:9]`` alternates into ``(a:9)``'s neighbour ``(:9)``), nested
    too deep or with a weight that is not a finite number (steady.prompts.syntax.check_syntax)."""
    check_syntax(prompt, name)
    for entry in prompt_schedule(prompt, steps):
        if entry.text != prompt:
            check_syntax(entry.text, name)


def text_at(schedule: list[Scheduled], step_index: int) -> int:
    """Index into `schedule` of the entry that sampling step `step_index` (0-based) uses."""
    for i, entry in enumerate(schedule):
        if step_index + 1 <= entry.end_step:
            return i
    return len(schedule) - 1


# -- parsing -------------------------------------------------------------------------------------
def _step(when: float, steps: int) -> int:
    if not math.isfinite(when):  # [a:b:999…9] past any step: never switches
        return steps if when > 0 else 0
    return min(steps, int(when * steps if when < 1 else when))


def _chars(text: str, start: int = 0):
    """(index, char) of the text from `start`, skipping backslash escapes (`\\[` is no bracket)."""
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        yield i, text[i]
        i += 1


def _parse(text: str) -> list:
    """A list of str and _Edit / _Alternate nodes; emphasis brackets stay text around their parse."""
    out: list = []
    start = 0
    for i, c in _chars(text):
        if i < start or c != "[":
            continue
        end = _closing(text, i)
        if end is None:
            break  # unclosed: A1111 emphasis to the end, left to steady.prompts
        inner = text[i + 1 : end]
        node = _bracket(inner)
        if text[start:i]:
            out.append(text[start:i])
        # Emphasis keeps its brackets (weighted later) with its inside parsed.
        out.extend(["[", *_parse(inner), "]"] if node is None else [node])
        start = end + 1
    if text[start:]:
        out.append(text[start:])
    return out


def _closing(text: str, open_at: int) -> int | None:
    depth = 0
    for i, c in _chars(text, open_at):
        depth += (c == "[") - (c == "]")
        if c == "]" and depth == 0:
            return i
    return None


def _top_level_split(inner: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in _chars(inner):
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def _bracket(inner: str) -> _Edit | _Alternate | None:
    options = _top_level_split(inner, "|")
    if len(options) > 1:
        return _Alternate([_parse(o) for o in options])
    parts = _top_level_split(inner, ":")
    if len(parts) in (2, 3) and _NUMBER.fullmatch(parts[-1]):
        when = float(parts[-1])
        before, after = ("", parts[0]) if len(parts) == 2 else (parts[0], parts[1])
        return _Edit(_parse(before), _parse(after), when)
    return None


def _walk(nodes: list):
    for node in nodes:
        if isinstance(node, _Edit):
            yield node
            yield from _walk(node.before)
            yield from _walk(node.after)
        elif isinstance(node, _Alternate):
            yield node
            for option in node.options:
                yield from _walk(option)


def _render(nodes: list, step: int, steps: int) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, _Edit):
            parts.append(_render(node.before if step <= _step(node.when, steps) else node.after, step, steps))
        elif isinstance(node, _Alternate):
            parts.append(_render(node.options[(step - 1) % len(node.options)], step, steps))
        else:
            parts.append(node)
    return "".join(parts)
