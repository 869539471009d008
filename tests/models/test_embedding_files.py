"""Embedding files described from their headers (torch-free), and A1111's word rule."""

from __future__ import annotations

import pytest

from steady.config import settings
from steady.errors import BadInput
from steady.models.embeddings import inspect_embedding, mentioned_names, unfit_reason, used_embeddings
from tests.fixtures.embeddings import save_embedding


@pytest.mark.parametrize("layout,suffix", [("a1111", ".safetensors"), ("string_to_param", ".pt"),
                                           ("diffusers", ".safetensors")])
def test_layouts_read_from_the_header(tmp_path, layout, suffix):
    info = inspect_embedding(save_embedding(tmp_path / f"neg{suffix}", (768,), vectors=4, layout=layout))
    assert (info.name, info.layout, info.vectors, info.widths, info.arch) == ("neg", layout, 4, (768,), "sd1")
    assert info.format == ("pickle" if suffix == ".pt" else "safetensors")


def test_sdxl_pair_and_sd2_width(tmp_path):
    xl = inspect_embedding(save_embedding(tmp_path / "xl.safetensors", (768, 1280), vectors=2, layout="sdxl"))
    assert (xl.layout, xl.vectors, xl.widths, xl.arch) == ("sdxl", 2, (768, 1280), "sdxl")
    assert inspect_embedding(save_embedding(tmp_path / "v2.safetensors", (1024,))).arch == "sd2"


def test_unknown_layout_and_corrupt_file(tmp_path):
    from safetensors.torch import save_file
    import torch

    save_file({"a": torch.zeros(2, 4), "b": torch.zeros(3)}, str(tmp_path / "two.safetensors"))
    assert inspect_embedding(tmp_path / "two.safetensors").layout == ""
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(BadInput, match="bad.safetensors"):
        inspect_embedding(tmp_path / "bad.safetensors")


def test_word_rule():
    texts = ("a cat, (EasyNegative:1.2), bad_hands", "easynegatives")
    assert mentioned_names(texts, ["easynegative", "bad", "bad_hands", "hands", "cat"]) == ["easynegative",
                                                                                              "bad_hands", "cat"]
    assert mentioned_names(("myeasynegative",), ["easynegative"]) == []
    # Words split at anything not a letter or digit, as the CLIP tokenizer splits them.
    assert mentioned_names(("a style-x_v2 look",), ["style-x"]) == ["style-x"]


def test_used_embeddings_and_fit(tmp_path):
    from steady.models.detect import inspect_model
    from tests.fixtures.tiny_models import save_tiny_folder

    folder = settings().embeddings_dir
    save_embedding(folder / "sub" / "good.safetensors", (32,), vectors=2)
    save_embedding(folder / "wide.safetensors", (768,))
    save_embedding(folder / "xl.safetensors", (32, 32), layout="sdxl")
    (folder / "broken.safetensors").write_bytes(b"garbage")
    infos, warnings = used_embeddings(("good and wide and xl", "broken"), settings())
    assert sorted(i.name for i in infos) == ["good", "wide", "xl"]
    assert len(warnings) == 1 and "embedding broken skipped" in warnings[0]
    model = inspect_model(save_tiny_folder("sd1", tmp_path / "sd1"))
    why = {i.name: unfit_reason(i, model) for i in infos}
    assert why["good"] == ""
    assert "768 wide" in why["wide"] and "takes 32" in why["wide"]
    assert "SDXL embedding" in why["xl"]


def test_steady_models_lists_embeddings_and_vaes(capsys):
    import json

    from tests.fixtures.cli import run_main
    from tests.fixtures.vaes import save_tiny_vae

    cfg = settings()
    save_embedding(cfg.embeddings_dir / "easyneg.safetensors", (768,), vectors=8)
    save_embedding(cfg.embeddings_dir / "xlneg.safetensors", (768, 1280), vectors=2, layout="sdxl")
    save_tiny_vae("sd1", cfg.vae_dir / "grain.vae.safetensors")
    code, out = run_main(["models", "--json"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    emb = {r["name"]: r for r in rows if r.get("type") == "embedding"}
    assert (emb["easyneg"]["vectors"], emb["easyneg"]["arch"]) == (8, "sd1")
    assert (emb["xlneg"]["vectors"], emb["xlneg"]["arch"], len(emb["xlneg"]["hash"])) == (2, "sdxl", 12)
    [vae] = [r for r in rows if r.get("type") == "vae"]
    assert (vae["name"], vae["layout"], len(vae["hash"])) == ("grain.vae.safetensors", "ldm", 10)
    code, out = run_main(["models", "--no-hash"], capsys)
    assert "easyneg" in out.out and "8 tokens" in out.out and "grain.vae.safetensors" in out.out


def test_shipped_embeddings_are_used_after_the_folders():
    from steady.models.embeddings import shipped_embedding_files

    shipped = [p for p in shipped_embedding_files() if p.stem == "aqua"]
    if not shipped:
        pytest.skip("no shipped embedding")
    infos, warnings = used_embeddings(("an aqua circle", ""), settings())
    assert [i.path for i in infos] == shipped and warnings == []
    assert used_embeddings(("a cyan circle", ""), settings()) == ([], [])
    mine = save_embedding(settings().embeddings_dir / "aqua.safetensors")  # a user's file of that name wins
    assert [i.path for i in used_embeddings(("an aqua circle", ""), settings())[0]] == [mine]
