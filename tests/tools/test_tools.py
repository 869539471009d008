"""The maintained scripts in tools/: each one runs, on a small input, and prints what it promises.

Each runs as a user runs it (`python tools/NAME.py ...` from the repository root), in a child
process with the test's own STEADY_HOME, offline.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "src" / "steady" / "models" / "configs" / "tokenizer"


def run_tool(name: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_make_tokenizer_rebuilds_the_shipped_files_from_their_merge_list(tmp_path) -> None:
    # The shipped merges.txt holds the same merges as OpenAI's list: gzip them under a header line
    # as bpe_simple_vocab_16e6.txt.gz has, and the tool must give back the shipped vocab and merges.
    merges = (TOKENIZER / "merges.txt").read_text(encoding="utf-8").split("\n")[1:]
    bpe = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("\n".join(["bpe_simple_vocab_16e6.txt#version: 0.2", *merges]))
    out = tmp_path / "tokenizer"
    printed = run_tool("make_tokenizer.py", str(bpe), str(out))
    assert "wrote 49408 tokens and 48894 merges" in printed
    assert json.loads((out / "vocab.json").read_text(encoding="utf-8")) == json.loads(
        (TOKENIZER / "vocab.json").read_text(encoding="utf-8"))
    assert (out / "merges.txt").read_text(encoding="utf-8") == (TOKENIZER / "merges.txt").read_text(encoding="utf-8")


def test_bench_import_imports_then_adds_nothing_the_second_time() -> None:
    result = json.loads(run_tool("bench_import.py", "-n", "30", "--batch", "10").strip().splitlines()[-1])
    assert result["n"] == 30
    assert result["first"]["added"] == 30
    assert result["second"]["added"] == 0 and result["second"]["already_known"] == 30
    assert result["first"]["seconds"] > 0 and result["catalog_mib"] > 0


def test_bench_tiny_speed_times_the_embedded_model_at_one_and_two_threads() -> None:
    printed = run_tool("bench_tiny_speed.py", "-n", "1")
    lines = re.findall(r"threads=(\d): median ([0-9.]+) s, best ([0-9.]+) s per image \(n=1,", printed)
    assert [t for t, _, _ in lines] == ["1", "2"], printed
    assert all(float(median) > 0 for _, median, _ in lines)


def test_tiny_short_prompts_counts_the_named_shape_per_prompt() -> None:
    printed = run_tool("tiny_short_prompts.py", "--seeds", "1")
    assert "CFG 5, seeds 100-100" in printed
    rows = re.findall(r"^ ?(\d+)/1 '([^']+)'", printed, flags=re.MULTILINE)
    assert len(rows) == 8 and rows[0][1] == "a circle"
    total = re.search(r"named shape drawn: (\d+)/8", printed)
    assert total and int(total.group(1)) == sum(int(n) for n, _ in rows)


def test_tiny_shape_breakdown_reads_reconstructions_and_samples_per_shape_and_size() -> None:
    printed = run_tool("tiny_shape_breakdown.py", "--recon", "8", "--per-holdout", "1", "--seen", "0",
                       "--balanced", "1")  # fmt: skip
    assert "VAE reconstructions of 8 scenes: shape" in printed
    assert "samples of 4 prompts (seed 1): shape" in printed
    balanced = re.search(r"samples of 8 balanced full prompts: shape [0-9.]+%  \|  (.*)", printed)
    assert balanced, printed
    assert len(re.findall(r"\w+/(?:small|large) \d/1", balanced.group(1))) == 8  # every (shape, size) once


def test_bench_lora_times_load_reweight_remove_and_the_base_comes_back(tmp_path) -> None:
    from tests.fixtures.tiny_models import save_tiny_folder

    model = save_tiny_folder("sd1", tmp_path / "tiny-sd1")
    result = json.loads(run_tool("bench_lora.py", str(model), "--rank", "4", "--size", "64", "--repeat", "1").strip().splitlines()[-1])
    assert set(result["seconds"]) == {"load", "reweight", "remove"} and all(v > 0 for v in result["seconds"].values())
    assert len(result["unet_step_seconds"]["base"]) == len(result["unet_step_seconds"]["lora"]) == 1
    assert result["base_exact_after_removal"] is True and result["tensors"] > 0


def test_bench_gallery_times_every_filter_over_a_catalog(tmp_path) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from steady.catalog import open_catalog
    from steady.catalog.importer import import_folder

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(40):
        meta = PngInfo()
        meta.add_text("parameters", f"a lighthouse number {i}\nSteps: 20, Sampler: Euler a, CFG scale: 5, Seed: {i}, "
                                    "Size: 8x8, Model: imported-model")  # fmt: skip
        Image.new("RGB", (8, 8), (i * 5, 0, 0)).save(folder / f"{i:03d}.png", pnginfo=meta)
    db = tmp_path / "catalog.db"
    with open_catalog(db) as catalog:
        import_folder(catalog, folder)
    result = json.loads(run_tool("bench_gallery.py", "queries", str(db)).strip().splitlines()[-1])
    assert result["images"] == 40
    timed = {k: v for k, v in result.items() if isinstance(v, dict)}
    assert len(timed) >= 10 and all(v["median_ms"] >= 0 for v in timed.values())
    assert timed["all"]["total"] == 40 - 1  # the copy trashes 1 % of the images (id 2 here)
