"""The gallery's API over real imported PNGs (the real app in process, TestClient): a plain PNG's
unknown parameters read as unknown, never as invented zeros."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from steady.catalog.importer import import_folder
from steady.params import ImageParams
from steady.web.studio import Studio


def plain_and_a1111(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / "plain.png"
    Image.new("RGB", (24, 16), (10, 200, 30)).save(plain)
    a1111 = folder / "a1111.png"
    meta = PngInfo()
    meta.add_text("parameters", "a red barn\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 0, Size: 24x16")
    Image.new("RGB", (24, 16), (200, 10, 30)).save(a1111, pnginfo=meta)
    return plain, a1111


def test_a_plain_png_shows_unknown_values_as_unknown(client: TestClient, studio: Studio, tmp_path: Path) -> None:
    plain, a1111 = plain_and_a1111(tmp_path / "pngs")
    assert import_folder(studio.catalog, tmp_path / "pngs").added == 2
    items = {item["id"]: item for item in client.get("/api/images").json()["items"]}
    by_path = {client.get(f"/api/images/{i}").json()["path"]: i for i in items}
    record = client.get(f"/api/images/{by_path[str(plain)]}").json()
    params = record["params"]
    assert (params["steps"], params["cfg_scale"], params["seed"], params["clip_skip"]) == (None, None, None, None)
    assert (params["width"], params["height"], params["prompt"], params["sampler"]) == (24, 16, "", "")
    assert record["infotext"] == "Size: 24x16"  # no "Steps: 0", "CFG scale: 0", "Seed: 0", no steady Version
    assert {"seed", "steps", "cfg_scale", "sampler", "prompt", "model_name"} <= set(record["unknown"])
    assert items[by_path[str(plain)]]["seed"] is None
    # Reuse: the request it gives keeps only what is known (the rest are the request's defaults).
    request = ImageParams.from_dict(params).request()
    assert (request.seed, request.steps, request.cfg_scale, request.width) == (-1, None, None, 24)
    # A file that says Seed: 0 keeps its 0: known, not unknown.
    said = client.get(f"/api/images/{by_path[str(a1111)]}").json()
    assert said["params"]["seed"] == 0 and "Seed: 0" in said["infotext"] and "seed" not in said["unknown"]
    assert "Steps: 20" in said["infotext"] and "Version" not in said["infotext"]


def test_the_favicon_is_served(client: TestClient) -> None:
    import io

    reply = client.get("/favicon.ico")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(reply.content)).format == "ICO"


def test_emptying_the_trash_removes_its_thumbnails(client: TestClient, studio: Studio, tmp_path: Path) -> None:
    """A deleted image's id can be given to a later one by SQLite: its thumbnail must not outlive it."""
    from steady.images.thumbs import thumb_path

    plain, _ = plain_and_a1111(tmp_path / "pngs")
    import_folder(studio.catalog, tmp_path / "pngs")
    image_id = next(i["id"] for i in client.get("/api/images").json()["items"]
                    if client.get(f"/api/images/{i['id']}").json()["path"] == str(plain))  # fmt: skip
    assert client.get(f"/api/images/{image_id}/thumb?size=128").status_code == 200
    assert client.delete(f"/api/images/{image_id}").status_code == 200
    assert thumb_path(studio.cfg.thumbs_dir, image_id, 128).is_file()  # kept while it can be restored
    assert client.delete("/api/trash").json() == {"deleted": 1}
    assert not thumb_path(studio.cfg.thumbs_dir, image_id, 128).exists()
