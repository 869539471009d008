"""Import's thumbnails made ahead (steady.catalog.ahead): every image gets its grid thumbnail and
dominant colour in one bounded pass; an unreadable file is marked, and a second pass does nothing."""

from __future__ import annotations

from PIL import Image

from steady.catalog.ahead import make_thumbs_ahead, pending_count
from steady.catalog.gallery import GalleryFilter, gallery_page
from steady.catalog.importer import import_folder
from steady.images.thumbs import thumb_path


def test_thumbnails_and_colours_are_made_ahead_after_an_import(catalog, tmp_path) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(7):
        Image.new("RGB", (40, 30), (30 * i, 200, 10)).save(folder / f"{i}.png")
    assert import_folder(catalog, folder).added == 7
    gone = folder / "3.png"
    gone.unlink()  # recorded, then lost: the pass must not stop at it
    thumbs = tmp_path / "thumbs"
    progress: list[tuple[int, int]] = []
    import steady.catalog.ahead as ahead

    ahead.BATCH, saved = 3, ahead.BATCH
    try:
        assert make_thumbs_ahead(catalog, thumbs, lambda done, total: progress.append((done, total))) == 6
    finally:
        ahead.BATCH = saved
    assert progress == [(3, 7), (6, 7), (7, 7)] and pending_count(catalog) == 0
    items = gallery_page(catalog, GalleryFilter(), limit=10).items
    by_name = {}
    for item in items:
        record = catalog.get_image(item.id)
        by_name[record.file_name] = item
        if record.file_name != "3.png":
            assert thumb_path(thumbs, item.id, 256).is_file()
            assert (item.colour >> 8) & 255 > 150  # green, as the image
    assert by_name["3.png"].colour is None  # unreadable: no colour to show, and not tried again
    assert make_thumbs_ahead(catalog, thumbs) == 0
