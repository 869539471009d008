"""The shipped tokenizer and component configs reproduce the real models (no weights needed)."""

from __future__ import annotations

import json

import pytest

from steady.models import shipped


def test_tokenizer_matches_openai_clip():
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(shipped.tokenizer_dir(), local_files_only=True)
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.pad_token == "<|endoftext|>"


@pytest.mark.parametrize(
    "variant,folder,pad,pad_id",
    [("sd1", "tokenizer", "<|endoftext|>", 49407), ("sd2", "tokenizer", "!", 0), ("sd2v", "tokenizer", "!", 0),
     ("sdxl", "tokenizer", "<|endoftext|>", 49407), ("sdxl", "tokenizer_2", "!", 0)],
)
def test_tokenizer_padding_per_family(tmp_path, variant, folder, pad, pad_id):
    from transformers import CLIPTokenizer

    cfg = shipped.materialize(variant, {}, tmp_path)
    tok = CLIPTokenizer.from_pretrained(cfg / folder, local_files_only=True)
    ids = tok("a photo of a cat", padding="max_length", max_length=tok.model_max_length).input_ids
    assert tok.pad_token == pad and len(ids) == 77
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407] and ids[7:] == [pad_id] * 70


# Parameter counts of the real models (UNet, VAE, text encoder[, text encoder 2]).
REAL_PARAMS = {
    "sd1": [859_520_964, 83_653_863, 123_060_480],
    "sd2": [865_910_724, 83_653_863, 340_387_840],  # OpenCLIP-H with 23 of 24 layers (penultimate)
    "sd2v": [865_910_724, 83_653_863, 340_387_840],
    "sdxl": [2_567_463_684, 83_653_863, 123_060_480, 694_659_840],
}


@pytest.mark.parametrize("variant", shipped.VARIANTS)
def test_shipped_configs_build_the_real_sizes(variant):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(m):
        return sum(p.numel() for p in m.parameters())

    with init_empty_weights():  # meta tensors: no memory, no init time
        sizes = [
            count(UNet2DConditionModel.from_config(shipped.load_component_config(variant, "unet"))),
            count(AutoencoderKL.from_config(shipped.load_component_config(variant, "vae"))),
            count(CLIPTextModel(CLIPTextConfig(**shipped.load_component_config(variant, "text_encoder")))),
        ]
        if variant == "sdxl":
            sizes.append(count(CLIPTextModelWithProjection(CLIPTextConfig(**shipped.load_component_config(variant, "text_encoder_2")))))
    assert sizes == REAL_PARAMS[variant]


def test_prediction_types_and_materialize_is_cached(tmp_path):
    assert shipped.load_component_config("sd2", "scheduler")["prediction_type"] == "epsilon"
    assert shipped.load_component_config("sd2v", "scheduler")["prediction_type"] == "v_prediction"
    a = shipped.materialize("sd1", {"unet": {"block_out_channels": [32, 64]}}, tmp_path)
    b = shipped.materialize("sd1", {"unet": {"block_out_channels": [32, 64]}}, tmp_path)
    c = shipped.materialize("sd1", {}, tmp_path)
    assert a == b != c
    assert json.loads((a / "unet" / "config.json").read_text())["block_out_channels"] == [32, 64]
    assert (a / "tokenizer" / "vocab.json").stat().st_size > 500_000
    with pytest.raises(ValueError):
        shipped.materialize("sd1", {"text_encoder_2": {}}, tmp_path)
