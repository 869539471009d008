"""steady.catalog.importer: real PNGs from each tool indexed in place, idempotently, in batches,
with bad files reported and skipped, and flat memory over thousands of files."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tracemalloc
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo as PilPngInfo

from steady.catalog.importer import image_params_from, import_folder
from steady.errors import BadInput
from steady.images.pngmeta import PngInfo

A1111_TEXT = ("a cat\nNegative prompt: blurry\n"
              "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512, Model hash: abc, Model: foo")

COMFY_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 25, "cfg": 8, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
}

INVOKE_V4 = {
    "generation_mode": "txt2img", "positive_prompt": "a lighthouse at dusk", "negative_prompt": "fog",
    "width": 768, "height": 512, "seed": 2973071392, "cfg_scale": 7.5, "steps": 30, "scheduler": "dpmpp_2m_k",
    "clip_skip": 1, "model": {"key": "3e7f9a2c", "hash": "blake3:0b5e4c1f", "name": "Juggernaut XL v9", "base": "sdxl"},
    "app_version": "4.2.4",
}

MTIME = datetime(2024, 3, 1, 12, 30, 15, 250000, tzinfo=timezone.utc).timestamp()


def png(path, size=(16, 16), colour=(10, 20, 30), mtime=MTIME, **texts):
    """A real PNG with text chunks (dict values are stored as JSON), and a known mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = PilPngInfo()
    for key, value in texts.items():
        chunks.add_text(key, value if isinstance(value, str) else json.dumps(value))
    Image.new("RGB", size, colour).save(path, pnginfo=chunks)
    os.utime(path, (mtime, mtime))
    return path


def claim_size(path, width, height):
    """Rewrite a valid PNG's IHDR to claim another size (with a correct CRC): a decompression bomb."""
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def mixed(tmp_path):
    """One folder with a PNG from each tool and each kind of trouble."""
    root = tmp_path / "outputs"
    files = {
        "a1111": png(root / "a1111.png", colour=(1, 0, 0), parameters=A1111_TEXT),
        "comfyui": png(root / "comfy" / "ComfyUI_00001_.png", size=(32, 48), colour=(2, 0, 0), prompt=COMFY_GRAPH,
                       workflow={"nodes": []}),
        "invokeai": png(root / "invoke" / "x.PNG", colour=(3, 0, 0), invokeai_metadata=INVOKE_V4),
        "plain": png(root / "plain.png", colour=(4, 0, 0)),
        "malformed": png(root / "malformed.png", colour=(5, 0, 0), prompt="{not json"),
        "bomb": claim_size(png(root / "bomb.png", colour=(6, 0, 0)), 100_000, 100_000),
        # Over Pillow's limit but under twice it: Pillow would only warn; we refuse it too.
        "bomb_warning": claim_size(png(root / "big.png", colour=(7, 0, 0)), 10_000, 10_000),
    }
    files["not_png"] = root / "notes.png"
    files["not_png"].write_text("this is not an image")
    files["copy"] = root / "z-copies" / "a1111-copy.png"
    files["copy"].parent.mkdir()
    files["copy"].write_bytes(files["a1111"].read_bytes())
    # Ignored: our temp files, other extensions, symlinked folders.
    (root / ".00001-00-5.png.0123abcd.tmp").write_bytes(b"partial")
    (root / "readme.txt").write_text("hello")
    elsewhere = png(tmp_path / "elsewhere" / "linked.png", colour=(9, 0, 0))
    (root / "link").symlink_to(elsewhere.parent, target_is_directory=True)
    return root, files


def rows(catalog):
    with catalog.reading() as conn:
        cursor = conn.execute(
            "SELECT i.path, i.source, i.content_hash, i.created_at, i.params_json, i.idx, r.status, r.id,"
            " i.steps, i.cfg_scale, i.seed, i.clip_skip"
            " FROM images i JOIN runs r ON r.id = i.run_id ORDER BY i.path")
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}


def test_import_reads_every_source_and_skips_bad_files(catalog, mixed):
    root, files = mixed
    report = import_folder(catalog, root)
    assert report.files_seen == 9
    assert report.added == 5 and report.already_known == 0 and report.duplicates == 1 and report.skipped == 3
    assert report.by_source == {"steady": 0, "a1111": 1, "comfyui": 2, "invokeai": 1, "none": 1}
    assert report.warnings >= 1 and any("malformed.png" in line and "JSON" in line for line in report.warning_lines)
    problems = "\n".join(report.problems)
    assert f"{files['not_png']}: is not a PNG image" in problems
    assert f"{files['bomb']}: refused as a possible decompression bomb" in problems
    assert f"{files['bomb_warning']}: refused as a possible decompression bomb" in problems
    assert Image.MAX_IMAGE_PIXELS is not None  # the limit is left on

    found = rows(catalog)
    assert set(found) == {str(files[name]) for name in ("a1111", "comfyui", "invokeai", "plain", "malformed")}
    for row in found.values():
        assert row["status"] == "imported" and len(row["content_hash"]) == 64
        assert row["created_at"] == "2024-03-01T12:30:15.250000+00:00"

    a1111 = json.loads(found[str(files["a1111"])]["params_json"])
    assert found[str(files["a1111"])]["source"] == "a1111"
    assert (a1111["prompt"], a1111["negative_prompt"], a1111["steps"], a1111["cfg_scale"], a1111["seed"]) == (
        "a cat", "blurry", 20, 7.0, 123)
    assert (a1111["sampler"], a1111["model_hash"], a1111["model_name"]) == ("Euler a", "abc", "foo")
    # The header's size is recorded; the metadata's differing size is kept in extra.
    assert (a1111["width"], a1111["height"], a1111["extra"]["metadata_size"]) == (16, 16, "512x512")

    comfy = json.loads(found[str(files["comfyui"])]["params_json"])
    assert found[str(files["comfyui"])]["source"] == "comfyui"
    assert (comfy["prompt"], comfy["negative_prompt"], comfy["seed"], comfy["steps"]) == (
        "a fox in the snow", "text, watermark", 156680208700286, 25)
    assert (comfy["cfg_scale"], comfy["sampler"], comfy["model_name"]) == (8.0, "Euler", "v1-5-pruned-emaonly")
    assert (comfy["width"], comfy["height"]) == (32, 48)
    assert comfy["extra"]["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"

    invoke = json.loads(found[str(files["invokeai"])]["params_json"])
    assert found[str(files["invokeai"])]["source"] == "invokeai"
    assert (invoke["prompt"], invoke["negative_prompt"], invoke["steps"], invoke["cfg_scale"]) == (
        "a lighthouse at dusk", "fog", 30, 7.5)
    assert (invoke["sampler"], invoke["model_name"], invoke["extra"]["app_version"]) == (
        "DPM++ 2M Karras", "Juggernaut XL v9", "4.2.4")

    for name in ("plain", "malformed"):
        plain = json.loads(found[str(files[name])]["params_json"])
        assert found[str(files[name])]["source"] == ("none" if name == "plain" else "comfyui")
        # Nothing is invented: what the file does not say is unknown, in params_json and in the columns.
        assert (plain["prompt"], plain["steps"], plain["cfg_scale"], plain["seed"], plain["clip_skip"]) == (
            "", None, None, None, None)
        row = found[str(files[name])]
        assert (row["steps"], row["cfg_scale"], row["seed"], row["clip_skip"]) == (None, None, None, None)
        assert (plain["width"], plain["height"]) == (16, 16)


def test_reimport_adds_nothing(catalog, mixed):
    root, _ = mixed
    first = import_folder(catalog, root)
    before = rows(catalog)
    again = import_folder(catalog, root)
    assert again.added == 0 and again.runs_created == 0
    assert again.already_known == first.added and again.duplicates == 1 and again.skipped == 3
    assert rows(catalog) == before
    # A new file is picked up; the old ones are still not re-read.
    png(root / "later.png", colour=(8, 8, 8), parameters=A1111_TEXT.replace("Seed: 123", "Seed: 124"))
    third = import_folder(catalog, root)
    assert (third.added, third.already_known) == (1, first.added)


def test_an_import_is_one_group_not_prompt_history(catalog, tmp_path):
    from steady.catalog.gallery import GalleryFilter, gallery_page
    from steady.catalog.groups import list_groups

    root = tmp_path / "pics"
    mtimes = [MTIME + 30, MTIME + 10, MTIME + 20]
    for i, mtime in enumerate(mtimes):
        png(root / f"cat-{i}.png", colour=(i, 1, 1), mtime=mtime, parameters=A1111_TEXT.replace("123", str(i)))
    png(root / "dog.png", colour=(9, 1, 1), parameters=A1111_TEXT.replace("a cat", "a dog"))
    png(root / "cat-other-model.png", colour=(9, 2, 1), parameters=A1111_TEXT.replace("Model: foo", "Model: bar"))
    report = import_folder(catalog, root, batch=2)  # the group spans batches
    assert report.added == 5 and report.runs_created == 1 and report.import_id is not None
    # The prompt history shows what was generated here: nothing yet.
    assert catalog.recent_runs(limit=10) == [] and catalog.runs_page("cat") == [] and catalog.prompt_iterations("") == []
    [group] = list_groups(catalog)
    assert (group.id, group.folder, group.count) == (report.import_id, str(root.resolve()), 5)
    run = catalog.get_run(group.run_id)
    assert (run.status, run.n_done, run.n_requested) == ("imported", 5, 5)
    assert sorted(image.index for image in catalog.images_of_run(run.id)) == [0, 1, 2, 3, 4]
    assert gallery_page(catalog, GalleryFilter(import_id=group.id)).total == 5
    assert gallery_page(catalog, GalleryFilter(here=True)).total == 0
    # The same folder again adds to its group; another folder is another group.
    png(root / "later.png", colour=(9, 3, 1), parameters=A1111_TEXT.replace("123", "77"))
    again = import_folder(catalog, root)
    assert (again.added, again.runs_created, again.import_id) == (1, 0, group.id)
    assert list_groups(catalog)[0].count == 6 and list_groups(catalog)[0].created_at == group.created_at
    png(tmp_path / "other" / "x.png", colour=(9, 4, 1))
    other = import_folder(catalog, tmp_path / "other")
    assert other.runs_created == 1 and [g.count for g in list_groups(catalog)] == [1, 6]


def test_killed_import_keeps_committed_batches_and_a_rerun_finishes(catalog, tmp_path):
    root = tmp_path / "pics"
    for i in range(7):
        png(root / f"{i}.png", colour=(i, 3, 3), parameters=A1111_TEXT.replace("123", str(i)))

    class Killed(Exception):
        pass

    def die_at_five(done, total):
        assert total == 7
        if done == 5:
            raise Killed

    with pytest.raises(Killed):
        import_folder(catalog, root, batch=2, on_progress=die_at_five)
    assert len(rows(catalog)) == 4  # two whole batches; the fifth file's batch never committed
    report = import_folder(catalog, root, batch=2)
    assert (report.added, report.already_known) == (3, 4)
    assert len(rows(catalog)) == 7


def test_paths_our_generator_recorded_are_known(catalog, tmp_path, params_factory, png_writer):
    params = params_factory()
    path = png_writer(tmp_path / "outputs" / "00001-00-1234.png", params)
    run_id = catalog.start_run(params.request(), params.model_name, params.model_hash)
    catalog.add_image(run_id, path, 0, params, seconds=1.0)
    unrecorded = png_writer(tmp_path / "outputs" / "00002-00-5.png", params_factory(seed=5))
    report = import_folder(catalog, tmp_path / "outputs")
    assert (report.already_known, report.added, report.by_source["steady"]) == (1, 1, 1)
    imported = rows(catalog)[str(unrecorded)]
    assert imported["source"] == "steady" and json.loads(imported["params_json"])["seed"] == 5


def test_a_copy_of_a_generated_image_is_a_duplicate_not_a_new_row(catalog, tmp_path, params_factory, png_writer):
    import shutil

    params = params_factory()
    path = png_writer(tmp_path / "outputs" / "00001-00-1234.png", params)
    run_id = catalog.start_run(params.request(), params.model_name, params.model_hash)
    image_id = catalog.add_image(run_id, path, 0, params, seconds=1.0)
    assert catalog.get_image(image_id).content_hash == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    (tmp_path / "copies").mkdir()
    shutil.copy(path, tmp_path / "copies" / "renamed.png")
    report = import_folder(catalog, tmp_path / "copies")
    assert (report.added, report.duplicates) == (0, 1) and len(rows(catalog)) == 1
    # Recording the same path again (a re-run after a crash) keeps its hash.
    catalog.add_image(run_id, path, 0, params, seconds=2.0)
    assert catalog.get_image(image_id).content_hash is not None


def test_bad_folder_and_batch_are_refused(catalog, tmp_path):
    with pytest.raises(BadInput) as missing:
        import_folder(catalog, tmp_path / "nope")
    assert missing.value.argument == "folder" and "no such folder" in missing.value.why
    file = png(tmp_path / "one.png")
    with pytest.raises(BadInput) as not_folder:
        import_folder(catalog, file)
    assert not_folder.value.argument == "folder" and "is a file" in not_folder.value.why
    with pytest.raises(BadInput) as bad_batch:
        import_folder(catalog, tmp_path, batch=0)
    assert bad_batch.value.argument == "batch"


def test_params_defaults_and_unusable_values():
    problems: list[str] = []
    info = PngInfo(source="a1111", params={
        "prompt": ["not", "text"], "seed": -1, "cfg_scale": float("nan"), "steps": "many", "clip_skip": 0,
        "Lora hashes": "a: 1", "Version": "v1.10.1",
    })
    params = image_params_from(info, 64, 32, problems)
    assert (params.prompt, params.seed, params.cfg_scale, params.steps, params.clip_skip) == ("", None, None, None, 1)
    assert (params.width, params.height, params.model_name, params.device) == (64, 32, "", "")
    assert params.extra == {"Lora hashes": "a: 1", "Version": "v1.10.1"}
    assert len(problems) == 3 and any("prompt" in p for p in problems) and any("steps" in p for p in problems)
    huge = image_params_from(PngInfo(source="comfyui", params={"seed": 2**64 - 1}), 8, 8, problems := [])
    assert huge.seed is None and huge.extra["source_seed"] == 2**64 - 1 and problems == []


def test_memory_stays_flat_over_thousands_of_files(catalog, tmp_path):
    # Each file carries a few KB of metadata (a long prompt). Measured peaks of traced memory:
    # 1.9 MiB with batches of 100, 10.2 MiB when all 2,000 files are held at once (batch=5000);
    # the bound sits between, so holding every file's metadata fails this test.
    root = tmp_path / "many"
    root.mkdir()
    n = 2000
    long_prompt = ", ".join(f"detail {i}" for i in range(300))  # about 3.5 KB
    base = Image.new("RGB", (8, 8), (1, 2, 3))
    for i in range(n):
        chunks = PilPngInfo()
        chunks.add_text("parameters", A1111_TEXT.replace("Seed: 123", f"Seed: {i}").replace("a cat", long_prompt + f" {i % 40}"))
        base.save(root / f"{i:05d}.png", pnginfo=chunks)
    tracemalloc.start()
    try:
        report = import_folder(catalog, root, batch=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.added == n and report.runs_created == 1
    assert peak < 5 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"
