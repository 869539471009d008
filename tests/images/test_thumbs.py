"""Thumbnails made ahead (steady.images.thumbs): the worker's pending thumbnail adopted under the
image's id, the dominant colour, and the cache's bound (least recently used go first)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PIL import Image

from steady.images.thumbs import (AHEAD, adopt_pending, dominant_colour, evict, pending_path, thumb_path, thumbnail,
                                  write_pending)  # fmt: skip


def test_dominant_colour_is_the_colour_most_of_the_image_has() -> None:
    image = Image.new("RGB", (64, 64), (200, 30, 40))
    image.paste((20, 40, 220), (0, 0, 20, 20))  # a blue corner: a tenth of the pixels
    colour = dominant_colour(image)
    red, green, blue = colour >> 16, (colour >> 8) & 255, colour & 255
    assert red > 150 and green < 80 and blue < 80, hex(colour)


def test_the_workers_thumbnail_is_adopted_under_the_image_id(tmp_path: Path) -> None:
    thumbs = tmp_path / "thumbs"
    png = tmp_path / "out" / "00001-00-5.png"
    image = Image.new("RGB", (512, 384), (10, 200, 30))
    written = write_pending(image, thumbs, png)
    assert written == pending_path(thumbs, png) and Image.open(written).size == (AHEAD, 192)
    colour = adopt_pending(thumbs, png, 42)
    assert colour is not None and (colour >> 8) & 255 > 150
    assert not written.exists() and Image.open(thumb_path(thumbs, 42, AHEAD)).size == (AHEAD, 192)
    assert adopt_pending(thumbs, tmp_path / "out" / "never-written.png", 43) is None


def test_the_cache_keeps_its_bound_and_evicts_the_least_recently_used(tmp_path: Path) -> None:
    thumbs = tmp_path / "thumbs"
    source = tmp_path / "a.png"
    Image.effect_noise((300, 300), 60).convert("RGB").save(source)
    paths = [thumbnail(source, thumbs, image_id, 256) for image_id in range(1, 11)]
    size = paths[0].stat().st_size
    now = time.time()
    for age, path in enumerate(reversed(paths)):  # id 10 newest ... id 1 oldest
        os.utime(path, (now - 3 * 86_400 - age, now - 3 * 86_400 - age))
    assert evict(thumbs, 20 * size) == 0  # under the bound: nothing goes
    # Serving the oldest marks it used (its mtime), so it outlives the others.
    assert thumbnail(source, thumbs, 1, 256) == paths[0]
    removed = evict(thumbs, 5 * size)
    left = sorted(int(p.name.split("-")[0]) for p in thumbs.rglob("*.jpg"))
    assert removed == 10 - len(left) and sum(p.stat().st_size for p in thumbs.rglob("*.jpg")) <= 0.9 * 5 * size
    assert 1 in left and left == sorted([1, *range(11 - (len(left) - 1), 11)])  # the newest and the one just used
