"""Only the recorded files are served: a recorded image (or a cached thumbnail) replaced by a
symlink, a FIFO or a folder, or reached through a symlinked folder, is a 404 and nothing of what
it points at is sent. Real files, a real catalog, the real app (TestClient)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from steady.config import Settings
from steady.images.thumbs import thumb_path
from steady.params import GenerationRequest, ImageParams
from steady.web.app import create_app
from steady.web.security import Guard
from steady.web.studio import Studio

PARAMS = ImageParams("p", "", 4, 5.0, 8, 8, 1, "Euler a", 1, "m", "h", "sd1", "cpu", "float32")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("root:x:0:0:do not serve\n")
    return path


def record(studio: Studio, folder: Path, name: str = "00001-00-1.png") -> tuple[int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.new("RGB", (8, 8), "red").save(path)
    run = studio.catalog.start_run(GenerationRequest("p"), "m", "h")
    return studio.catalog.add_image(run, path, 0, PARAMS, 1.0), path


def assert_not_served(client: TestClient, image_id: int) -> None:
    for url in (f"/api/images/{image_id}/file", f"/api/images/{image_id}/thumb"):
        reply = client.get(url)
        assert reply.status_code == 404, (url, reply.status_code, reply.content[:100])
        assert reply.json()["argument"] in ("file", "thumbnail") and b"do not serve" not in reply.content


def test_a_recorded_image_is_served_with_its_thumbnail(client: TestClient, studio: Studio) -> None:
    image_id, path = record(studio, studio.cfg.outputs_dir / "day")
    reply = client.get(f"/api/images/{image_id}/file")
    assert reply.status_code == 200 and reply.content == path.read_bytes()
    assert reply.headers["content-length"] == str(path.stat().st_size)
    thumb = client.get(f"/api/images/{image_id}/thumb?size=128")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"


def test_an_image_replaced_by_a_symlink_is_not_followed(client: TestClient, studio: Studio, secret: Path) -> None:
    image_id, path = record(studio, studio.cfg.outputs_dir / "day")
    path.unlink()
    path.symlink_to(secret)
    assert_not_served(client, image_id)
    # Even a link to another image inside the outputs is not followed.
    _, other = record(studio, studio.cfg.outputs_dir / "day", "00002-00-1.png")
    path.unlink()
    path.symlink_to(other)
    assert_not_served(client, image_id)


def test_an_image_reached_through_a_symlinked_folder_is_not_served(client: TestClient, studio: Studio,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    image_id, path = record(studio, studio.cfg.outputs_dir / "day")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / path.name).write_text("do not serve")
    shutil.rmtree(path.parent)
    path.parent.symlink_to(elsewhere, target_is_directory=True)
    assert_not_served(client, image_id)


def test_a_fifo_or_a_folder_in_an_images_place_is_not_served(client: TestClient, studio: Studio) -> None:
    image_id, path = record(studio, studio.cfg.outputs_dir / "day")
    path.unlink()
    os.mkfifo(path)  # opening it for reading would wait for a writer: it must not hang the server
    assert_not_served(client, image_id)
    path.unlink()
    path.mkdir()
    assert_not_served(client, image_id)


def test_a_cached_thumbnail_replaced_by_a_symlink_is_not_followed(client: TestClient, studio: Studio,
                                                                  secret: Path) -> None:  # fmt: skip
    image_id, _ = record(studio, studio.cfg.outputs_dir / "day")
    assert client.get(f"/api/images/{image_id}/thumb?size=128").status_code == 200
    cached = thumb_path(studio.cfg.thumbs_dir, image_id, 128)
    cached.unlink()
    cached.symlink_to(secret)
    os.utime(secret)  # newer than the image: it would be taken as up to date
    reply = client.get(f"/api/images/{image_id}/thumb?size=128")
    assert reply.status_code == 404 and b"do not serve" not in reply.content


def test_imported_images_outside_the_home_are_served_where_they_were_recorded(client: TestClient, studio: Studio,
                                                                              tmp_path: Path, secret: Path) -> None:  # fmt: skip
    image_id, path = record(studio, tmp_path / "a1111-outputs" / "txt2img")
    assert client.get(f"/api/images/{image_id}/file").status_code == 200
    path.unlink()
    path.symlink_to(secret)
    assert_not_served(client, image_id)


def test_a_home_under_a_symlinked_folder_still_serves_its_images(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    studio = Studio(Settings(home=tmp_path / "linked" / "home"))
    try:
        with TestClient(create_app(studio, Guard(), start_studio=False), base_url="http://127.0.0.1") as client:
            image_id, _ = record(studio, studio.cfg.outputs_dir / "day")
            assert client.get(f"/api/images/{image_id}/file").status_code == 200
            assert client.get(f"/api/images/{image_id}/thumb").status_code == 200
    finally:
        studio.catalog.close()
