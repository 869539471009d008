"""The tiny world's CLIP (`steady.tiny.judge`): its training logic on small cases, a smoke run that the
worker's CLIP scorer loads, and the shipped judge telling the asked attribute from the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from steady.tiny import judge as J
from steady.tiny.data import make_scene, render


def _scene(shape: str = "circle", colour: str = "red", size: str = "small", position: str = "top left",
           background: str = "blue"):  # fmt: skip
    return make_scene(np.random.default_rng(0), shape, colour, size, position, background)


def test_a_caption_matches_every_image_that_shows_what_it_names() -> None:
    scenes = [_scene(), _scene(shape="square"), _scene(colour="green", size="large")]
    match = J.positives(["a circle", "a small red circle", "a square", "a large green circle on the top left"], scenes)
    assert match.tolist() == [[1, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_the_contrastive_loss_rewards_scoring_every_match_and_only_matches() -> None:
    match = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    right = torch.tensor([[5.0, -5.0, 5.0], [-5.0, 5.0, -5.0]])
    one_of_two = torch.tensor([[5.0, -5.0, -5.0], [-5.0, 5.0, -5.0]])
    wrong = -right
    assert J.contrastive_loss(right, match) < J.contrastive_loss(one_of_two, match) < J.contrastive_loss(wrong, match)


def test_training_sees_images_exactly_as_the_scorer_will() -> None:
    image = render(_scene())
    from_processor = J.processor()(images=[Image.fromarray(image)], return_tensors="pt")["pixel_values"]
    assert torch.equal(from_processor, J.pixels(image[None]))


def test_a_quick_judge_is_a_clip_folder_the_worker_scorer_loads(tmp_path: Path) -> None:
    from steady.worker.adherence import ClipScorer

    log = J.train(J.JudgeConfig(**{**J.QUICK, "steps": 4, "pool": 32, "eval_every": 4, "eval_scenes": 4}), tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "judge.json").is_file()
    assert log["eval"] and set(log["eval"][-1]) >= {"shape", "colour", "size", "position", "background"}
    score = ClipScorer(str(tmp_path)).score(None, Image.fromarray(render(_scene())), "a small red circle")
    assert score is not None and 0.0 <= score <= 100.0


def test_the_shipped_judge_prefers_the_true_caption_over_a_swapped_attribute() -> None:
    """On fresh scenes as the tiny VAE returns them, the true caption outscores each caption with
    the shape or the colour swapped, as the scorer sees it (the recorded accuracy is in judge.json)."""
    from steady.models.default import embedded_judge_path
    from steady.tiny.scenes import COLOUR_NAMES, SHAPES
    from steady.worker.adherence import ClipScorer

    folder = embedded_judge_path()
    if not (folder / "model.safetensors").is_file():
        pytest.skip("no shipped judge in this install")
    scorer = ClipScorer(str(folder))
    pool = J.build_pool(24, seed=12345, vae=J.load_vae())
    right = total = 0
    for scene, pixels in zip(pool.scenes, pool.decoded, strict=True):
        image = Image.fromarray(pixels)
        true = scorer.score(None, image, J.phrase(scene))
        swaps = [J.phrase(scene, shape=s) for s in SHAPES if s != scene.shape]
        swaps += [J.phrase(scene, colour=c) for c in COLOUR_NAMES if c not in (scene.colour, scene.background)]
        right += sum(true > scorer.score(None, image, s) for s in swaps)
        total += len(swaps)
    assert right / total >= 0.9, f"{right}/{total}"


def test_the_defaults_are_the_shipped_judges_run() -> None:
    import json

    from steady.models.default import embedded_judge_path

    log = embedded_judge_path() / "judge.json"
    if not log.is_file():
        pytest.skip("no shipped judge in this install")
    shipped = json.loads(log.read_text())["config"]
    assert {**shipped, "threads": 0} == J.JudgeConfig().to_dict()
