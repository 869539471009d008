"""`steady info` and `steady history`: output, JSON, errors naming `image`, word diffs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo as PilPngInfo

from steady.catalog import open_catalog
from steady.cli import _register_all, cli
from steady.cli.history import word_diff
from steady.images.pngmeta import a1111_parameters, write_png
from steady.params import GenerationRequest, ImageParams
from tests.fixtures.cli import run_main

A1111_TEXT = (
    "a cozy cabin in the woods\nNegative prompt: lowres\n"
    "Steps: 25, Sampler: DPM++ 2M, CFG scale: 6, Seed: 42, Size: 832x1216, Lora hashes: \"a: 1, b: 2\""
)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEADY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def params(**overrides) -> ImageParams:
    base = dict(prompt="a lighthouse at dusk", negative_prompt="blurry", steps=20, cfg_scale=7.5, width=64, height=64,
                seed=1234, sampler="Euler a", clip_skip=2, model_name="tiny-sd1", model_hash="0123456789",
                model_arch="sd1", device="cpu", dtype="float32", steady_version="0.1.0")
    base.update(overrides)
    return ImageParams(**base)


def invoke(args):
    _register_all()
    return CliRunner().invoke(cli, args, catch_exceptions=False)


# ------------------------------------------------------------------------------------ info


def test_info_prints_a1111_text_of_our_png(tmp_path):
    p = params()
    path = write_png(Image.new("RGB", (8, 8)), tmp_path / "a.png", p)
    result = invoke(["info", str(path)])
    assert result.exit_code == 0
    assert result.output == a1111_parameters(p) + "\n"


def test_info_json_of_a1111_png(tmp_path):
    chunks = PilPngInfo()
    chunks.add_text("parameters", A1111_TEXT)
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=chunks)
    result = invoke(["info", "--json", str(path)])
    data = json.loads(result.output)
    assert data["source"] == "a1111" and data["warnings"] == []
    assert data["params"]["seed"] == 42 and data["params"]["Lora hashes"] == "a: 1, b: 2"
    assert invoke(["info", str(path)]).output == A1111_TEXT + "\n"


def test_info_comfyui_synthesises_text(tmp_path):
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 8, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1, "positive": ["6", 0],
                                                   "negative": ["7", 0], "latent_image": ["5", 0], "model": ["4", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    }
    chunks = PilPngInfo()
    chunks.add_text("prompt", json.dumps(graph))
    path = tmp_path / "comfy.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=chunks)
    assert invoke(["info", str(path)]).output == (
        "a fox\nSteps: 20, Sampler: Euler, CFG scale: 8, Seed: 5, Size: 512x512, Model: sd15\n"
    )


def test_info_no_metadata_and_warnings(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code, captured = run_main(["info", str(plain)], capsys)
    assert code == 0 and captured.out == "" and "no generation parameters" in captured.err
    chunks = PilPngInfo()
    chunks.add_text("prompt", "{broken")
    broken = tmp_path / "broken.png"
    Image.new("RGB", (8, 8)).save(broken, pnginfo=chunks)
    code, captured = run_main(["info", "--json", str(broken)], capsys)
    assert code == 0 and json.loads(captured.out)["source"] == "comfyui"
    assert "steady: warning:" in captured.err and "not valid JSON" in captured.err


@pytest.mark.parametrize("make", ["missing", "folder", "jpeg", "text"])
def test_info_bad_image_exits_2_naming_image(tmp_path, capsys, make):
    target = tmp_path / "x.png"
    if make == "folder":
        target.mkdir()
    elif make == "jpeg":
        Image.new("RGB", (8, 8)).save(target, format="JPEG")
    elif make == "text":
        target.write_text("hello")
    code, captured = run_main(["info", str(target)], capsys)
    assert code == 2
    assert captured.err.startswith(f"steady: error: image={str(target)!r}:")
    assert captured.err.count("\n") == 1


def test_info_in_a_subprocess(tmp_path, home):
    env = dict(os.environ, STEADY_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "steady", "info", str(tmp_path / "nope.png")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "image=" in done.stderr and "no such file" in done.stderr


# ------------------------------------------------------------------------------------ history


def record_run(catalog, tmp_path, prompt, n=1, negative="blurry", status="done"):
    request = GenerationRequest(prompt=prompt, negative_prompt=negative, n_images=max(n, 1), seed=1)
    run_id = catalog.start_run(request, "tiny-sd1", "0123456789")
    for index in range(n):
        p = params(prompt=prompt, negative_prompt=negative, seed=index)
        path = write_png(Image.new("RGB", (8, 8)), tmp_path / "out" / f"{run_id:05d}-{index:02d}-{index}.png", p)
        catalog.add_image(run_id, path, index, p, 1.0)
    catalog.finish_run(run_id, status)
    return run_id


def test_word_diff():
    assert word_diff("a red circle, on white", "a big red square, on white") == ["+big", "-circle", "+square"]
    assert word_diff("same words", "same,  words") == []
    assert word_diff("", "new words") == ["+new", "+words"]


def test_history_empty(capsys):
    code, captured = run_main(["history"], capsys)
    assert code == 0 and captured.out == "no runs yet\n"
    code, captured = run_main(["history", "--json"], capsys)
    assert json.loads(captured.out) == []


def test_history_recent_runs(tmp_path, capsys):
    with open_catalog() as catalog:
        first = record_run(catalog, tmp_path, "a lighthouse at dusk", n=2)
        second = record_run(catalog, tmp_path, "a forest\nin fog", n=1, status="cancelled")
    code, captured = run_main(["history"], capsys)
    lines = captured.out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[0] == str(second) and "a forest / in fog" in lines[0] and "cancelled" in lines[0]
    assert lines[1].split()[0] == str(first) and "2/2" in lines[1] and "tiny-sd1" in lines[1]
    assert lines[1].endswith(f"{first:05d}-00-0.png")
    code, captured = run_main(["history", "--limit", "1", "--json"], capsys)
    (row,) = json.loads(captured.out)
    assert row["id"] == second and row["prompt"] == "a forest\nin fog" and row["n_done"] == 1


def test_history_prompt_iterations_with_diffs(tmp_path, capsys):
    with open_catalog() as catalog:
        a = record_run(catalog, tmp_path, "a lighthouse at dusk")
        record_run(catalog, tmp_path, "a mountain lake")
        b = record_run(catalog, tmp_path, "a tall Lighthouse at dusk, fog", negative="blurry, text")
        c = record_run(catalog, tmp_path, "a tall Lighthouse at dusk, fog", negative="blurry, text")
    code, captured = run_main(["history", "--prompt", "LIGHTHOUSE"], capsys)
    out = captured.out
    assert code == 0
    assert out.index(f"#{a} ") < out.index(f"#{b} ") < out.index(f"#{c} ") and "mountain" not in out
    assert "    -lighthouse +tall +Lighthouse +fog" in out
    assert "    negative: +text" in out and "(same prompt)" in out
    code, captured = run_main(["history", "--prompt", "lighthouse", "--json"], capsys)
    rows = json.loads(captured.out)
    assert [row["id"] for row in rows] == [a, b, c]
    assert rows[0]["diff"] is None
    assert rows[1]["diff"] == {"against_run": a, "prompt": ["-lighthouse", "+tall", "+Lighthouse", "+fog"],
                               "negative_prompt": ["+text"]}
    code, captured = run_main(["history", "--prompt", "zebra"], capsys)
    assert "no runs with a prompt containing 'zebra'" in captured.out


def test_history_bad_limit_exits_2(capsys):
    code, captured = run_main(["history", "--limit", "0"], capsys)
    assert code == 2 and "limit=0" in captured.err


@pytest.mark.parametrize("as_json", [True, False])
def test_info_prints_a_lone_surrogate_from_a_json_chunk(tmp_path, capsys, as_json):
    """Found by fuzzing: a ComfyUI or steady JSON chunk may escape a lone surrogate ("\\ud800"),
    which json.loads turns into a str that stdout cannot encode; it is printed as the escape."""
    meta = PilPngInfo()
    meta.add_text("prompt", json.dumps({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a \ud800 cat"}},
                                        "2": {"class_type": "KSampler", "inputs": {"positive": ["1", 0], "seed": 5}}}))
    Image.new("RGB", (4, 4)).save(tmp_path / "c.png", pnginfo=meta)
    code, out = run_main(["info", str(tmp_path / "c.png"), *(["--json"] if as_json else [])], capsys)
    assert code == 0, out.err
    out.out.encode("utf-8")
    if as_json:
        assert json.loads(out.out)["params"]["prompt"] == "a \ud800 cat"
    else:
        assert "a \\ud800 cat" in out.out
