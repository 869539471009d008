"""A local CLIP model as the adherence scorer (config `scorer`), behind the same interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
)

from steady.config import settings
from steady.errors import BadInput
from steady.jobs.runner import run
from steady.jobs.supervisor import SupervisorOptions
from steady.models.shipped import tokenizer_dir
from steady.params import GenerationRequest


def tiny_clip(folder: Path) -> Path:
    """A random-weight CLIP with the real tokenizer, saved like a downloaded CLIP folder."""
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                     "vocab_size": 49408, "max_position_embeddings": 77},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir()))  # fmt: skip
    processor.save_pretrained(folder)
    return folder


def test_a_clip_folder_in_the_config_scores_every_image(tmp_path: Path) -> None:
    clip = tiny_clip(tmp_path / "clip")
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.config_path.write_text(f'scorer = "{clip}"\n')
    outcome = run(GenerationRequest("a red circle", n_images=2, steps=3, seed=1),
                            options=SupervisorOptions(threads=1))  # fmt: skip
    assert outcome.state == "done", outcome.error
    assert all(0.0 <= r.adherence <= 100.0 for r in outcome.images)


def test_a_scorer_that_is_not_a_folder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.config_path.write_text(f'scorer = "{tmp_path / "nope"}"\n')
    with pytest.raises(BadInput) as caught:
        run(GenerationRequest("a red circle", steps=3))
    assert caught.value.argument == "scorer"


def test_tiny_clip_in_the_config_scores_with_the_judge_shipped_for_the_embedded_model() -> None:
    from steady.models.default import embedded_judge_path

    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.config_path.write_text('scorer = "tiny-clip"\n')
    assert settings().scorer == str(embedded_judge_path())
    outcome = run(GenerationRequest("a red circle", n_images=1, steps=3, seed=1),
                            options=SupervisorOptions(threads=1))  # fmt: skip
    assert outcome.state == "done", outcome.error
    assert all(0.0 <= r.adherence <= 100.0 for r in outcome.images)
