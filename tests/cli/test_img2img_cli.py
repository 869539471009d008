"""`steady generate --init-image`: a folder makes one run per image, in the init images' sizes; bad
init images, masks and strengths are one line and exit code 2 before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from steady.config import settings
from tests.fixtures.cli import run_main


def test_a_folder_of_init_images_is_one_run_per_image(tmp_path, capsys):
    folder = tmp_path / "inits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("not an image, not picked up")
    code, out = run_main(["generate", "a red circle", "--init-image", str(folder), "--steps", "4", "--strength", "0.5",
                          "--seed", "3", "--json", "--out", str(tmp_path / "out")], capsys)  # fmt: skip
    assert code == 0, out.err
    lines = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    images = [line for line in lines if "path" in line]
    assert len(images) == 2 and len({line["run_id"] for line in images}) == 2
    assert sorted(Image.open(line["path"]).size for line in images) == [(64, 64), (72, 48)]  # rounded to 8
    code, out = run_main(["history"], capsys)
    assert out.out.count("from an image not in the catalog") == 2


@pytest.mark.parametrize("argv, needle", [
    (["--init-image", "{tmp}/junk.png"], "init_image='{tmp}/junk.png': is not an image"),
    (["--init-image", "{tmp}/empty"], "init_image='{tmp}/empty': is a folder with no images"),
    (["--init-image", "{tmp}/ok.png", "--strength", "1.5"], "strength=1.5: must be between 0.0 and 1.0"),
    (["--init-image", "{tmp}/ok.png", "--init-image", "{tmp}/junk.png"], "init_image='{tmp}/junk.png'"),
    (["--mask", "{tmp}/ok.png"], "mask='{tmp}/ok.png': needs an init image"),
    (["--init-image", "{tmp}/ok.png", "--mask", "{tmp}/junk.png"], "mask='{tmp}/junk.png': is not an image"),
    (["--init-image", "{tmp}/ok.png", "--masked-content", "blur"], "masked_content='blur': must be one of fill, original, latent noise, latent nothing"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, needle, tmp_path, capsys):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (tmp_path / "empty").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out = run_main(["generate", "x", *argv], capsys)
    assert code == 2
    assert needle.replace("{tmp}", str(tmp_path)) in out.err and len(out.err.strip().splitlines()) <= 3
    assert not settings().inputs_dir.exists() and not settings().db_path.exists()
