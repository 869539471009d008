"""The gallery's prompt search (FTS5, steady.catalog.search) and its pages by key
(steady.catalog.pages), over a real catalog: every page at every position, in both orders,
equals what a plain ORDER BY ... LIMIT/OFFSET query over the same filter returns."""

from __future__ import annotations

import json

import pytest

from steady.catalog.db import insert_image, insert_run
from steady.catalog.gallery import GalleryFilter, empty_trash, gallery_page, set_flags
from steady.catalog.pages import WINDOW, PageCache
from steady.catalog.search import parse
from steady.errors import BadInput
from tests.catalog.conftest import make_params, make_request

PROMPTS = ["a red castle on a hill", "Oil painting of a red barn", "castles in the sky, (masterpiece:1.2)",
           "a blue Café at night", "portrait of a robot"]  # fmt: skip


def fill(catalog, n: int) -> list[int]:
    """n rows (no files needed for the queries), created_at repeating so ties are broken by id."""
    ids = []
    with catalog.transaction() as conn:
        run = insert_run(conn, make_request(), "m", "h", "done")
        for i in range(n):
            params = make_params(prompt=PROMPTS[i % len(PROMPTS)], negative_prompt="watermark" if i % 4 == 0 else "",
                                 model_name=f"model-{i % 3}", seed=i)  # fmt: skip
            ids.append(insert_image(conn, run, f"/x/{i}.png", i, params, 0.0, 0, 0, 1, f"2026-01-{1 + i % 9:02d}"))
            if i % 3 == 0:
                conn.execute("UPDATE images SET adherence = ? WHERE id = ?", ((i * 37) % 11 / 10, ids[-1]))
    return ids


def found(catalog, text: str) -> set[int]:
    page = gallery_page(catalog, GalleryFilter(text=text), limit=500)
    assert page.total == len(page.items)
    return {item.seed for item in page.items}


def seeds_of(n: int, *prompts: int) -> set[int]:
    return {i for i in range(n) if i % len(PROMPTS) in prompts}


def test_search_words_phrases_prefixes_exclusions_and_fields(catalog) -> None:
    fill(catalog, 40)
    assert found(catalog, "red") == seeds_of(40, 0, 1)
    assert found(catalog, "castle") == seeds_of(40, 0, 2)  # a bare word is a prefix: castles too
    assert found(catalog, '"red castle"') == seeds_of(40, 0)  # a phrase, word for word
    assert found(catalog, '"red barn" oil') == seeds_of(40, 1)
    assert found(catalog, "red -barn") == seeds_of(40, 0)
    assert found(catalog, "MASTERPIECE") == seeds_of(40, 2)  # any case; punctuation is not in the way
    assert found(catalog, "cafe") == seeds_of(40, 3)  # accents folded
    assert found(catalog, "neg:watermark") == {i for i in range(40) if i % 4 == 0}
    assert found(catalog, "red -neg:watermark") == {i for i in seeds_of(40, 0, 1) if i % 4}
    assert found(catalog, "model:model-2 robot") == {i for i in seeds_of(40, 4) if i % 3 == 2}
    assert found(catalog, "-red") == seeds_of(40, 2, 3, 4)
    assert found(catalog, "((") == set(range(40))  # nothing searchable: no condition
    assert found(catalog, "zebra") == set()
    assert parse('a "b c').include == ['prompt : "a"*', 'prompt : "b c"']  # an unclosed quote ends the text
    with pytest.raises(BadInput) as long:
        gallery_page(catalog, GalleryFilter(text="x" * 501))
    assert long.value.argument == "q"


def test_the_index_follows_inserts_updates_and_deletes(catalog, tmp_path) -> None:
    ids = fill(catalog, 10)
    with catalog.transaction() as conn:
        conn.execute("UPDATE images SET prompt = 'a green meadow' WHERE id = ?", (ids[0],))
        conn.execute("UPDATE images SET trash_path = 'x', trashed_at = 't' WHERE id = ?", (ids[1],))
    assert found(catalog, "meadow") == {0} and 0 not in found(catalog, "castle")
    assert empty_trash(catalog) == 1
    with catalog.reading() as conn:
        conn.execute("INSERT INTO images_fts (images_fts, rank) VALUES ('integrity-check', 1)")
        assert conn.execute("SELECT COUNT(*) FROM images_fts WHERE images_fts MATCH 'red'").fetchone()[0] == 2  # 5 and 6


@pytest.mark.parametrize("sort", ["newest", "adherence"])
@pytest.mark.parametrize("broad", [5000, 1], ids=["listed-by-rows", "listed-by-walking"])
def test_pages_by_key_equal_offset_pages_at_every_position(catalog, sort: str, broad: int, monkeypatch) -> None:
    import steady.catalog.gallery as gallery

    monkeypatch.setattr(gallery, "BROAD", broad)  # a search counts as broad from this many matches
    n = 3 * WINDOW + 17
    fill(catalog, n)
    set_flags(catalog, 5, favourite=True)
    order = {"newest": "created_at DESC, id DESC",
             "adherence": "adherence IS NULL, adherence DESC, created_at DESC, id DESC"}[sort]  # fmt: skip
    for flt, where in ((GalleryFilter(sort=sort), "1"), (GalleryFilter(sort=sort, text="red"), "prompt LIKE '%red%'")):
        with catalog.reading() as conn:
            expected = [r[0] for r in conn.execute(f"SELECT id FROM images WHERE {where} ORDER BY {order}")]
        cache = PageCache()
        # A jump to the last window first (walked from the top), then every window, then odd positions.
        positions = [3 * WINDOW, *range(0, n, WINDOW), 7, WINDOW + 5, n - 1, n + 3]
        for position in positions:
            page = gallery_page(catalog, flt, offset=position, limit=WINDOW, cache=cache)
            assert page.total == len(expected)
            assert [t.id for t in page.items] == expected[position:position + WINDOW], (flt, position)
        # `after` chains through the whole listing.
        seen, after = [], ""
        while True:
            page = gallery_page(catalog, flt, limit=100, after=after, cache=cache)
            seen += [t.id for t in page.items]
            if page.next is None:
                break
            after = page.next
        assert seen == expected


def test_a_write_forgets_what_was_learnt(catalog) -> None:
    fill(catalog, 2 * WINDOW)
    cache = PageCache()
    assert gallery_page(catalog, GalleryFilter(), offset=WINDOW, cache=cache).total == 2 * WINDOW
    with catalog.transaction() as conn:
        conn.execute("UPDATE images SET trash_path = 'x' WHERE id IN (SELECT id FROM images ORDER BY created_at DESC, id DESC LIMIT 3)")
    page = gallery_page(catalog, GalleryFilter(), offset=WINDOW, limit=WINDOW, cache=cache)
    assert page.total == 2 * WINDOW - 3 and len(page.items) == WINDOW - 3
    with pytest.raises(BadInput) as bad:
        gallery_page(catalog, GalleryFilter(), after=json.dumps(["x"]))
    assert bad.value.argument == "after"


def test_each_order_reads_its_index(catalog) -> None:
    fill(catalog, 10)
    from steady.catalog.pages import ORDERS

    with catalog.reading() as conn:
        for sort, index in (("newest", "images_live_newest"), ("adherence", "images_live_adherence")):
            keys = ORDERS[sort]
            plan = " ".join(str(r) for r in conn.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM images WHERE trash_path IS NULL AND ({', '.join(keys)}) <= "
                f"({', '.join('?' * len(keys))}) ORDER BY {', '.join(k + ' DESC' for k in keys)} LIMIT 120",
                (0,) * len(keys)))  # fmt: skip
            assert index in plan and "TEMP B-TREE" not in plan, plan
