"""A1111 prompt syntax: emphasis `(word)`, `(word:1.3)`, `[word]`, escapes and `BREAK`.

    parse_emphasis("a (red:1.3) circle, [blurry] BREAK blue sky")
    -> [Fragment("a ", 1.0), Fragment("red", 1.3), Fragment(" circle, ", 1.0), Fragment("blurry", 0.909...),
        Fragment(" ", 1.0), BREAK, Fragment(" blue sky", 1.0)]

Rules, as AUTOMATIC1111 documents them: `(x)` multiplies the weight of x by 1.1 and `[x]` divides
it by 1.1, nesting multiplies; `(x:1.5)` sets the factor to 1.5; `\\(` and friends are literal
brackets; an unclosed bracket applies to the end of the prompt; `BREAK` (upper case, a word of
its own) starts a new 75-token chunk. The worker turns fragments into weighted CLIP embeddings
(steady.worker.encode), so prompts copied from A1111 images behave the same here.

Why not compel: its syntax (`word++`, `(word)1.3`) and its weighting arithmetic differ from
A1111's, so A1111 prompts would need translating and would still not give A1111's embeddings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from steady.errors import BadInput, shorten

UP = 1.1
DOWN = 1 / 1.1
_TOKEN = re.compile(r"\\[()\[\]\\]|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|\]|[^\\()\[\]:]+|:|\\")
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_SYNTAX = re.compile(r"[()\[\]]|\bBREAK\b")
# How deep brackets may nest. Real prompts nest a few levels ("((masterpiece))"); parsing is
# recursive and each level costs a pass over the rest of the prompt, so a prompt of thousands of
# nested brackets would exhaust the recursion limit or take minutes. 1.1**100 is still finite.
MAX_NESTING = 100


@dataclass(frozen=True)
class Fragment:
    text: str
    weight: float


BREAK = Fragment("BREAK", -1.0)


def uses_emphasis(prompt: str) -> bool:
    """Whether the prompt has anything A1111 would weight or split (brackets or BREAK)."""
    return bool(_SYNTAX.search(prompt))


def check_syntax(prompt: str, name: str = "prompt") -> None:
    """BadInput naming ``name`` when the prompt cannot be parsed sensibly: brackets nested deeper
    than MAX_NESTING (unclosed ones count: they apply to the end), or an emphasis weight that is
    not a finite number (``(word:1e400)``). Linear in the prompt's length; steady.request.check
    calls it, so such a prompt is refused before anything is queued."""
    depth = deepest = 0
    escaped = False
    for c in prompt:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]" and depth:
            depth -= 1
    if deepest > MAX_NESTING:
        raise BadInput(name, shorten(prompt), f"brackets nest {deepest} deep; at most {MAX_NESTING} are taken")
    for match in _TOKEN.finditer(prompt):
        if match.group(1) is not None and not math.isfinite(float(match.group(1))):
            raise BadInput(name, shorten(prompt), f"emphasis weight {shorten(match.group(1), 20)} is not a finite number")


def parse_emphasis(prompt: str) -> list[Fragment]:
    """The prompt's fragments and their weights; BadInput (check_syntax) for one that nests too
    deep or has a weight that is not a finite number."""
    check_syntax(prompt)
    out: list[list | None] = []  # [text, weight] pairs (None: a BREAK), merged at the end
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for item in out[start:]:
            if item is not None:
                item[1] *= factor

    for match in _TOKEN.finditer(prompt):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            out.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(out))
        elif token == "[":
            square_open.append(len(out))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            scale(round_open.pop(), UP)
        elif token == "]" and square_open:
            scale(square_open.pop(), DOWN)
        else:
            pieces = _BREAK.split(token)
            for i, piece in enumerate(pieces):
                if i:
                    out.append(None)
                if piece:
                    out.append([piece, 1.0])
    for start in round_open:
        scale(start, UP)
    for start in square_open:
        scale(start, DOWN)
    merged: list[Fragment] = []
    for item in out:
        if item is None:
            merged.append(BREAK)
        elif merged and merged[-1] is not BREAK and abs(merged[-1].weight - item[1]) < 1e-9:
            merged[-1] = Fragment(merged[-1].text + item[0], merged[-1].weight)
        else:
            merged.append(Fragment(item[0], item[1]))
    return merged or [Fragment("", 1.0)]
