"""`steady import FOLDER`: the summary, --json, and a one-line exit 2 for a bad folder."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo as PilPngInfo

from tests.fixtures.cli import run_main

A1111_TEXT = ("a cat\nNegative prompt: blurry\n"
              "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512, Model hash: abc, Model: foo")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEADY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def folder_of_pngs(tmp_path):
    root = tmp_path / "outputs"
    root.mkdir()
    chunks = PilPngInfo()
    chunks.add_text("parameters", A1111_TEXT)
    Image.new("RGB", (8, 8), (1, 1, 1)).save(root / "a.png", pnginfo=chunks)
    Image.new("RGB", (8, 8), (2, 2, 2)).save(root / "plain.png")
    (root / "broken.png").write_text("not a png")
    return root


def test_import_prints_a_summary_and_is_idempotent(tmp_path, capsys, home):
    root = folder_of_pngs(tmp_path)
    code, captured = run_main(["import", str(root)], capsys)
    assert code == 0
    out = captured.out
    assert f"3 PNG file(s) in {root.resolve()}" in out
    assert "2 added (a1111 1, none 1)" in out and "0 already in the catalog" in out and "1 skipped" in out
    assert f"  {root.resolve() / 'broken.png'}: is not a PNG image" in out
    assert "3/3" in captured.err  # the progress bar, on stderr
    assert (home / "catalog.db").exists()
    code, captured = run_main(["import", "-q", str(root)], capsys)
    assert code == 0 and "0 added" in captured.out and "2 already in the catalog" in captured.out


def test_import_json(tmp_path, capsys):
    root = folder_of_pngs(tmp_path)
    code, captured = run_main(["import", "--json", str(root)], capsys)
    assert code == 0 and captured.err == ""
    report = json.loads(captured.out)
    assert (report["added"], report["skipped"], report["by_source"]["a1111"]) == (2, 1, 1)


@pytest.mark.parametrize("make", ["missing", "file"])
def test_bad_folder_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, home, make):
    target = tmp_path / "pics"
    if make == "file":
        Image.new("RGB", (8, 8)).save(target, format="PNG")
    code, captured = run_main(["import", str(target)], capsys)
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"steady: error: folder={str(target)!r}:")
    assert captured.err.count("\n") == 1
    assert not home.exists()


def test_import_makes_the_grid_thumbnails_ahead(tmp_path, capsys, home):
    from steady.catalog import open_catalog
    from steady.images.thumbs import thumb_path

    root = folder_of_pngs(tmp_path)
    code, _ = run_main(["import", "-q", "--no-thumbnails", str(root)], capsys)
    with open_catalog(home / "catalog.db") as catalog, catalog.reading() as conn:
        assert [r[0] for r in conn.execute("SELECT colour FROM images")] == [None, None]
    code, captured = run_main(["import", str(root)], capsys)  # nothing new to add; the thumbnails are made
    assert code == 0 and "2/2" in captured.err
    with open_catalog(home / "catalog.db") as catalog, catalog.reading() as conn:
        rows = conn.execute("SELECT id, colour FROM images").fetchall()
    assert all(colour is not None for _, colour in rows)
    assert all(thumb_path(home / "cache" / "thumbs", image_id, 256).is_file() for image_id, _ in rows)
