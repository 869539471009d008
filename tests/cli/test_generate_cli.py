"""The CLI's contract: one-line errors with exit code 2 for bad input, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from steady.cli import main


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["generate", "x", "--sampler", "Euler z"], "sampler='Euler z'"),
        (["generate", "x", "-W", "513"], "width=513"),
        (["generate", "x", "--steps", "0"], "steps=0"),
        (["generate", "x", "--cfg", "99"], "cfg_scale=99"),
        (["generate", "x", "-n", "31"], "--max-images"),
        (["generate", "", ], "prompt=''"),
        (["generate", "x", "--model", "/nonexistent/model.safetensors"], "model="),
        (["generate", "x", "--steps", "abc"], "--steps"),
    ],
)
def test_bad_input_exit_2_one_line(argv, needle, capsys, tmp_path):
    code, out = run_main(argv + ["--out", str(tmp_path / "out")], capsys)
    assert code == 2
    lines = [line for line in out.err.strip().splitlines() if line.strip()]
    assert needle in out.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    if "abc" not in argv:  # click's own usage errors print a usage line first
        assert len(lines) == 1, out.err


def test_subprocess_generate_and_models(tmp_path):
    from tests.fixtures.tiny_models import save_tiny_single_file

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    save_tiny_single_file("sd1", home / "models" / "tiny.safetensors")
    env = dict(os.environ, STEADY_HOME=str(home), HF_HUB_OFFLINE="1")
    listed = subprocess.run([sys.executable, "-m", "steady", "models"], env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "tiny" in listed.stdout and "sd1" in listed.stdout
    done = subprocess.run(
        [sys.executable, "-m", "steady", "generate", "a red circle", "--model", "tiny", "-n", "2", "--steps", "2",
         "-W", "32", "-H", "32", "--seed", "7", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert {json.loads(line)["params"]["cfg_scale"] for line in lines} == {7.0}  # no --cfg: a checkpoint's default
    history = subprocess.run([sys.executable, "-m", "steady", "history"], env=env, capture_output=True, text=True, timeout=300)
    assert history.returncode == 0 and "a red circle" in history.stdout


def test_pickle_refused_before_loading(capsys, tmp_path):
    import torch
    from safetensors.torch import load_file

    from tests.fixtures.tiny_models import save_tiny_single_file

    ckpt = tmp_path / "old.ckpt"  # inspected without running it (steady.models.pickled), never loaded
    torch.save({"state_dict": load_file(save_tiny_single_file("sd1", tmp_path / "m.safetensors"))}, ckpt)
    code, out = run_main(["generate", "x", "--model", str(ckpt), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "is a pickle" in out.err and "--allow-pickle" in out.err and f"model='{ckpt}'" in out.err


def test_sdxl_generate_with_a1111_syntax_ranks_by_adherence(tmp_path):
    """An SDXL single file (tiny, random weights) through the real worker: emphasis and alternation
    are accepted and every image gets the model's adherence score, so the run is listed best-first."""
    from tests.fixtures.tiny_models import save_tiny_single_file

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    save_tiny_single_file("sdxl", home / "models" / "xl.safetensors")
    env = dict(os.environ, STEADY_HOME=str(home), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "steady", "generate", "a (red:1.3) [circle|square] BREAK blue background",
         "--model", "xl", "-n", "2", "--steps", "2", "-W", "64", "-H", "64", "--seed", "3"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("adherence ") == 2 and "best first (prompt adherence):" in done.stdout


def test_progress_lines_count_every_steps_and_the_cap_is_said(tmp_path):
    """Off a terminal the CLI prints progress lines a log can read; a grid's total is the sum of its
    images' steps (a Steps axis makes them differ), not one image's; an --until-saturated run that
    reaches its cap says so."""
    from tests.fixtures.tiny_models import save_tiny_single_file

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    save_tiny_single_file("sd1", home / "models" / "tiny.safetensors")
    env = dict(os.environ, STEADY_HOME=str(home), HF_HUB_OFFLINE="1")
    base = [sys.executable, "-m", "steady", "generate", "a red circle", "--model", "tiny", "-W", "32", "-H", "32"]
    grid = subprocess.run(base + ["--x", "Steps: 2, 4", "--y", "Seed: 1, 2"], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert grid.returncode == 0, grid.stderr
    assert "generate: 12/12 step (100%)" in grid.stderr, grid.stderr
    capped = subprocess.run(base + ["--steps", "2", "--until-saturated", "-n", "3"], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert capped.returncode == 0, capped.stderr
    assert "steady: done: reached its cap of 3 images before variety saturated" in capped.stderr
    assert "generate: 6/6 step (100%)" in capped.stderr
