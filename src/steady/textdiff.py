"""Word-level differences between two prompts: what an edit added and removed.

    word_ops("a red circle", "a large blue circle")
    -> [same 'a', del 'red', add 'large', add 'blue', same 'circle']
    word_diff(...) -> ['-red', '+large', '+blue']

Words are split on whitespace and commas (commas separate tags in SD prompts, so they are not
words themselves).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_WORD = re.compile(r"[^\s,]+")


@dataclass
class WordOp:
    op: str  # 'same', 'add' or 'del'
    text: str


def word_ops(old: str, new: str) -> list[WordOp]:
    """`new` word by word, with the words of `old` it dropped in place ('del')."""
    before, after = _WORD.findall(old), _WORD.findall(new)
    ops: list[WordOp] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            ops.extend(WordOp("same", word) for word in after[b_start:b_end])
            continue
        if tag in ("delete", "replace"):
            ops.extend(WordOp("del", word) for word in before[a_start:a_end])
        if tag in ("insert", "replace"):
            ops.extend(WordOp("add", word) for word in after[b_start:b_end])
    return ops


def word_diff(old: str, new: str) -> list[str]:
    """Words removed ('-word') and added ('+word') going from `old` to `new`, in order."""
    return [("+" if o.op == "add" else "-") + o.text for o in word_ops(old, new) if o.op != "same"]
