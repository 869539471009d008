"""Tests for the analytic attribute checker: accuracy on ground truth, robustness, failures.

Run:  pytest tests/tiny/test_tiny_checker.py -q -s   (-s prints the measured accuracies)
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from steady.tiny.checker import analyse, check
from steady.tiny.data import dataset, sample
from steady.tiny.scenes import ATTRIBUTES


def _accuracy(images_and_scenes: list) -> dict[str, float]:
    hits = dict.fromkeys(ATTRIBUTES, 0)
    for image, scene in images_and_scenes:
        got = analyse(image).attributes()
        for a in ATTRIBUTES:
            hits[a] += got[a] == getattr(scene, a)
    return {a: hits[a] / len(images_and_scenes) for a in ATTRIBUTES}


def _degrade(image: np.ndarray, rng: np.random.Generator, blur: float, noise: float) -> np.ndarray:
    """Roughly what a VAE round trip does: softer edges and a little noise."""
    soft = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(blur)), dtype=float)
    return np.clip(soft + rng.normal(0.0, noise, image.shape), 0, 255).astype(np.uint8)


def test_checker_accuracy_on_2000_ground_truth_scenes() -> None:
    data = [(s.image, s.scene) for s in dataset(1234, 2000, holdout=False)]
    acc = _accuracy(data)
    print("\nchecker accuracy, 2000 ground-truth scenes:", {a: f"{v:.4f}" for a, v in acc.items()})
    assert all(v >= 0.99 for v in acc.values()), acc


@pytest.mark.parametrize(("blur", "noise"), [(0.8, 6.0), (1.2, 10.0)])
def test_checker_is_robust_to_blur_and_noise(blur: float, noise: float) -> None:
    rng = np.random.default_rng(0)
    data = [(_degrade(s.image, rng, blur, noise), s.scene) for s in dataset(99, 400, holdout=False)]
    acc = _accuracy(data)
    print(f"\nchecker accuracy, blur {blur} + noise {noise}:", {a: f"{v:.4f}" for a, v in acc.items()})
    assert all(v >= 0.95 for v in acc.values()), acc


def test_check_scores_only_what_the_prompt_names() -> None:
    s = sample(0, 2, drop_prob=0.0)
    truth = s.scene
    result = check(s.image, s.caption)
    assert result.n_checked == 5 and result.score == 1.0
    assert all(result.correct.values())
    result = check(s.image, f"a {truth.shape}")
    assert result.n_checked == 1 and result.correct["colour"] is None
    wrong_shape = next(x for x in ("circle", "square", "triangle", "cross") if x != truth.shape)
    result = check(s.image, f"a {truth.colour} {wrong_shape}")
    assert result.correct == {"shape": False, "colour": True, "size": None, "position": None,
                              "background": None}  # fmt: skip
    assert result.score == 0.5
    assert check(s.image, "a photo of a cat").n_checked == 0


def test_failed_generations_do_not_crash() -> None:
    rng = np.random.default_rng(3)
    blank = np.full((64, 64, 3), 200, np.uint8)
    result = check(blank, "a small red circle at the top left on a white background")
    assert not result.estimate.found and result.estimate.shape is None
    assert result.correct["shape"] is False and result.correct["background"] is True
    noise = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    estimate = analyse(noise)
    assert estimate.shape is None  # noise matches no shape well enough
    speck = blank.copy()
    speck[30:32, 30:32] = 0
    assert not analyse(speck).found  # a few pixels are not an object
    gradient = np.tile(np.linspace(0.0, 1.0, 64)[None, :, None], (64, 1, 3))  # float in [0, 1]
    analyse(gradient)
    analyse(Image.fromarray(sample(0, 1).image))  # PIL images work too
    with pytest.raises(ValueError, match="size"):
        analyse(np.zeros((32, 32, 3), np.uint8))
