"""Word-level differences between two prompts: what an edit added and removed.

    word_ops("a red circle", "a large blue circle")
    -> [same 'a', del 'red', add 'large', add 'blue', same 'circle']
    word_diff(...) -> ['-red', '+large', '+blue']

Words are split on whitespace and commas (commas separate tags in SD prompts, so they are not
words themselves). Only the first MAX_DIFF_WORDS words of each prompt are compared word by word
(difflib's matcher is quadratic: two 10,000-word prompts took 15 s); past them, the rest of the
two prompts is one 'same' op when it is equal, else one 'del' and one 'add'.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_WORD = re.compile(r"[^\s,]+")
MAX_DIFF_WORDS = 500


@dataclass
class WordOp:
    op: str  # 'same', 'add' or 'del'
    text: str


def word_ops(old: str, new: str) -> list[WordOp]:
    """`new` word by word, with the words of `old` it dropped in place ('del')."""
    before, after = _WORD.findall(old), _WORD.findall(new)
    rest_before, rest_after = before[MAX_DIFF_WORDS:], after[MAX_DIFF_WORDS:]
    before, after = before[:MAX_DIFF_WORDS], after[:MAX_DIFF_WORDS]
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
    if rest_before == rest_after:
        ops.extend([WordOp("same", " ".join(rest_after))] if rest_after else [])
    else:
        ops.extend(WordOp(op, " ".join(rest)) for op, rest in (("del", rest_before), ("add", rest_after)) if rest)
    return ops


def word_diff(old: str, new: str) -> list[str]:
    """Words removed ('-word') and added ('+word') going from `old` to `new`, in order."""
    return [("+" if o.op == "add" else "-") + o.text for o in word_ops(old, new) if o.op != "same"]
