"""Prompt search: the gallery's query text as an SQLite FTS5 query over `images_fts`.

    clause, args = search_clause('red "oil painting" cast* -blurry neg:watermark model:sd15')

The query language (what a search box user expects; no operators to learn for the common case):

    red castle        both words, each as a word prefix (red, reddish; castle, castles)
    "oil painting"    that phrase, word for word
    cast*             an explicit prefix (the same as a bare word)
    -blurry           without that word
    neg:watermark     the negative prompt has that word (neg:"a phrase" too)
    -neg:text         the negative prompt lacks it
    model:sd15        the model's name has that word

Words are matched as FTS5's unicode61 tokenizer splits and folds them (any case, accents
removed), so punctuation in a prompt ("(masterpiece:1.2)") never stops a match. The index is
kept in step with the images table by triggers (migration m009); each search reads only the
matching rows' entries, not every row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from steady.errors import BadInput

MAX_QUERY = 500
_TOKEN = re.compile(r'(-?)(?:(neg|model):)?(?:"([^"]*)"?|(\S+))')
_COLUMNS = {None: "prompt", "neg": "negative_prompt", "model": "model_name"}


@dataclass
class Search:
    """The parsed query: FTS5 expressions that must match, and ones that must not."""

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.include and not self.exclude


def parse(text: str) -> Search:
    if len(text) > MAX_QUERY:
        raise BadInput("q", text[:40] + "…", f"is longer than {MAX_QUERY} characters")
    search = Search()
    for match in _TOKEN.finditer(text):
        negative, column, phrase, word = match.groups()
        if phrase is not None:
            expression = _quoted(phrase, prefix=False)
        else:
            expression = _quoted(word.rstrip("*"), prefix=True)
        if expression is None:
            continue  # nothing searchable (only punctuation)
        term = f"{_COLUMNS[column]} : {expression}"
        (search.exclude if negative else search.include).append(term)
    return search


def _quoted(text: str, prefix: bool) -> str | None:
    """`text` as one FTS5 string (a phrase of its tokens); a prefix query on its last token.
    None when it holds no word characters (FTS5 would find nothing, or refuse it)."""
    if not re.search(r"\w", text):
        return None
    return '"' + text.replace('"', '""') + '"' + ("*" if prefix else "")


def search_clause(text: str) -> tuple[str, list[str]]:
    """An SQL condition on images.id for the query, with its arguments ("" when it has no terms)."""
    search = parse(text)
    clauses: list[str] = []
    args: list[str] = []
    if search.include:
        clauses.append("id IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)")
        args.append(" AND ".join(search.include))
    if search.exclude:
        clauses.append("id NOT IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)")
        args.append(" OR ".join(search.exclude))
    return " AND ".join(clauses), args
