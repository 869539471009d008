"""Textual-inversion embeddings through the whole path (check, a supervised worker, the PNG), on
the tiny random-weight models: the word changes the pixels, the next image without it gives the
base model's exact pixels, every layout of the same vectors gives the same pixels, and bad files
are skipped with a warning the image records."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import steady
from steady.config import settings
from steady.errors import BadInput
from steady.images import infotext
from steady.images.pngmeta import read_png_info
from steady.params import GenerationRequest
from tests.fixtures.embeddings import save_embedding

PROMPT = "a red circle"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    root = tmp_path_factory.mktemp("models")
    return {arch: save_tiny_folder(arch, root / f"tiny-{arch}") for arch in ("sd1", "sdxl")}


def make(model, sup, prompt=PROMPT, **kw):
    base = dict(prompt=prompt, negative_prompt="blurry", steps=2, width=32, height=32, seed=99, model=str(model))
    return steady.generate(GenerationRequest(**{**base, **kw}), supervisor=sup)


def pixels(result) -> np.ndarray:
    return np.asarray(Image.open(result.path).convert("RGB")).astype(int)


def test_word_applies_and_goes_away(models, sup):
    folder = settings().embeddings_dir
    save_embedding(folder / "shiny.safetensors", (32,), vectors=3, seed=1)
    save_embedding(folder / "dull.safetensors", (32,), vectors=1, seed=2)
    [base] = make(models["sd1"], sup)
    [shiny] = make(models["sd1"], sup, f"{PROMPT}, shiny")
    [negative] = make(models["sd1"], sup, negative_prompt="blurry, DULL")
    [plain] = make(models["sd1"], sup)
    assert np.abs(pixels(shiny) - pixels(base)).max() > 10
    assert np.abs(pixels(negative) - pixels(base)).max() > 0
    assert np.array_equal(pixels(plain), pixels(base))  # tokenizer and token table restored
    entry = shiny.params.extra["embeddings"][0]
    assert (entry["name"], entry["vectors"], len(entry["hash"])) == ("shiny", 3, 12)
    info = read_png_info(shiny.path)
    assert f'TI hashes: "shiny: {entry["hash"]}"' in info.parameters_text  # quoted: the value holds ':'
    assert infotext.parse(info.parameters_text).params["ti_hashes"] == {"shiny": entry["hash"]}
    assert "path" not in info.raw["steady"]  # no folder of the user's in the PNG
    assert "embeddings" not in plain.params.extra


def test_layouts_give_the_same_pixels(models, sup):
    folder = settings().embeddings_dir
    save_embedding(folder / "viaa.safetensors", (32,), vectors=2, seed=5, layout="a1111")
    save_embedding(folder / "viad.safetensors", (32,), vectors=2, seed=5, layout="diffusers")
    save_embedding(folder / "viap.pt", (32,), vectors=2, seed=5, layout="string_to_param")
    [a] = make(models["sd1"], sup, f"{PROMPT} viaa")
    [d] = make(models["sd1"], sup, f"{PROMPT} viad")
    with pytest.raises(BadInput, match="allow-pickle"):
        make(models["sd1"], sup, f"{PROMPT} viap")
    [p] = make(models["sd1"], sup, f"{PROMPT} viap", allow_pickle=True)
    assert np.array_equal(pixels(a), pixels(d)) and np.array_equal(pixels(a), pixels(p))


def test_sdxl_pair(models, sup):
    save_embedding(settings().embeddings_dir / "xlstyle.safetensors", (32, 32), vectors=2, layout="sdxl", seed=3)
    [base] = make(models["sdxl"], sup)
    [styled] = make(models["sdxl"], sup, f"{PROMPT}, xlstyle")
    [plain] = make(models["sdxl"], sup)
    assert np.abs(pixels(styled) - pixels(base)).max() > 0
    assert np.array_equal(pixels(plain), pixels(base))
    assert styled.params.extra["embeddings"][0]["name"] == "xlstyle"


def test_bad_files_are_skipped_with_a_warning(models, sup):
    from safetensors.torch import save_file
    import torch

    folder = settings().embeddings_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    save_embedding(folder / "wide.safetensors", (768,))
    save_file({"a": torch.zeros(2, 4), "b": torch.zeros(3)}, str(folder / "odd.safetensors"))
    save_embedding(folder / "nan.safetensors", (32,))
    save_file({"emb_params": torch.full((1, 32), float("nan"))}, str(folder / "nan.safetensors"))
    [base] = make(models["sd1"], sup)
    [r] = make(models["sd1"], sup, f"{PROMPT} corrupt wide odd nan")
    warnings = r.params.extra["warnings"]
    assert any(w.startswith("embedding corrupt skipped") for w in warnings)
    assert any(w.startswith("embedding wide skipped") and "768" in w for w in warnings)
    assert any(w.startswith("embedding odd skipped") and "not a textual-inversion" in w for w in warnings)
    assert any(w.startswith("embedding nan skipped") and "NaN" in w for w in warnings)  # found by the worker
    assert all("\n" not in w for w in warnings)
    assert read_png_info(r.path).params  # the image was made and written
    assert "embeddings" not in r.params.extra  # none was applied: no TI hashes


def test_multi_vector_embedding_is_kept_in_one_chunk():
    """74 plain tokens, then a 3-vector embedding: it does not fit in what is left of chunk 1 and
    starts chunk 2 whole (A1111's rule); its 3 ids are the rows just appended."""
    from steady.params import ImageParams
    from steady.worker.embeddings import LoadedEmbeddings, apply_embeddings, remove_embeddings, with_embedding_tokens
    from steady.worker.encode import _chunks
    from tests.fixtures.tiny_models import make_tiny_pipeline

    path = save_embedding(settings().embeddings_dir / "triple.safetensors", (32,), vectors=3)
    pipe = make_tiny_pipeline("sd1")
    table = pipe.text_encoder.get_input_embeddings()
    params = ImageParams("x", "", 2, 5.0, 32, 32, 1, "Euler", 1, "m", "h", "sd1", "cpu", "float32",
                         extra={"embeddings": [{"name": "triple", "hash": "abc", "vectors": 3, "path": str(path)}]})
    loaded = LoadedEmbeddings()
    assert apply_embeddings(pipe, loaded, params) == []
    text = with_embedding_tokens("cat " * 74 + "Triple", loaded)
    chunks = _chunks(pipe.tokenizer, text)
    assert [len(ids) for ids, _ in chunks] == [74, 3]
    assert chunks[1][0] == [49408, 49409, 49410]
    remove_embeddings(pipe, loaded)
    assert pipe.text_encoder.get_input_embeddings() is table and table.weight.shape[0] == 49408
    assert len(pipe.tokenizer) == 49408
