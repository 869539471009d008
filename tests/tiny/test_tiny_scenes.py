"""Tests for the tiny model's vocabulary, captions and prompt parser.

Run:  pytest tests/tiny/test_tiny_scenes.py -q
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from steady.tiny.data import sample_scene
from steady.tiny.scenes import (
    ATTRIBUTES,
    COLOURS,
    HOLDOUTS,
    POSITION_NAMES,
    SHAPES,
    caption,
    is_held_out,
    parse_prompt,
)


def test_vocabulary_is_big_enough_and_colours_are_far_apart() -> None:
    assert len(SHAPES) >= 4 and {"circle", "square", "triangle"} <= set(SHAPES)
    assert len(COLOURS) >= 8
    assert len(POSITION_NAMES) == 9
    for a, b in itertools.combinations(COLOURS, 2):
        distance = float(np.linalg.norm(np.subtract(a.rgb, b.rgb)))
        # jitter moves each colour by <= 10*sqrt(3) ~ 17; nearest-name needs a wide gap
        assert distance > 85, (a.name, b.name, distance)


@pytest.mark.parametrize("drop_prob", [0.0, 0.25, 0.6, 1.0])
def test_caption_parse_round_trip(drop_prob: float) -> None:
    rng = np.random.default_rng(11)
    named_counts = dict.fromkeys(ATTRIBUTES, 0)
    for _ in range(400):
        scene = sample_scene(rng, holdout=False)
        text = caption(scene, rng, drop_prob=drop_prob)
        parsed = parse_prompt(text)
        truth = scene.attributes()
        assert all(parsed[a] == truth[a] for a in parsed), (text, parsed, truth)
        assert parsed["shape"] == scene.shape  # the shape is always named
        if drop_prob == 0.0:
            assert parsed == truth, text
        for a in parsed:
            named_counts[a] += 1
    if 0.0 < drop_prob < 1.0:  # attributes are left out sometimes, not always
        assert all(0 < named_counts[a] < 400 for a in ATTRIBUTES if a != "shape"), named_counts
    if drop_prob == 1.0:
        assert named_counts == {**dict.fromkeys(ATTRIBUTES, 0), "shape": 400}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a red circle", {"shape": "circle", "colour": "red"}),
        ("red circle top left", {"shape": "circle", "colour": "red", "position": "top left"}),
        ("A small red circle at the top left on a blue background",
         {"shape": "circle", "colour": "red", "size": "small", "position": "top left", "background": "blue"}),
        ("a blue background with a big grey square in the middle",
         {"shape": "square", "colour": "gray", "size": "large", "position": "center", "background": "blue"}),
        ("large green triangle, bottom right, white background",
         {"shape": "triangle", "colour": "green", "size": "large", "position": "bottom right",
          "background": "white"}),
        ("a cross on the left", {"shape": "cross", "position": "left"}),
        ("yellow square on black", {"shape": "square", "colour": "yellow", "background": "black"}),
        ("a photo of a cat, trending on artstation", {}),
        ("upper right tiny pink disc", {"shape": "circle", "colour": "pink", "size": "small",
                                        "position": "top right"}),
        ("", {}),
    ],
)  # fmt: skip
def test_parse_prompt_examples(prompt: str, expected: dict[str, str]) -> None:
    assert parse_prompt(prompt) == expected


def test_holdouts_describe_real_combinations() -> None:
    assert HOLDOUTS, "evaluation needs held-out combinations"
    assert is_held_out({"shape": "triangle", "colour": "green", "size": "small"})
    assert not is_held_out({"shape": "triangle", "colour": "red"})
    for h in HOLDOUTS:
        assert len(h.attributes) >= 2
        assert is_held_out(dict(h.attributes))
