"""The opt-in extension of the tiny world: a star and a lime the embedded model never saw.

Run:  pytest tests/tiny/test_tiny_extension.py -q -s
"""

from __future__ import annotations

import numpy as np

from steady.tiny.checker import analyse, check
from steady.tiny.data import dataset, extension_scenes, sample
from steady.tiny.evaluate import eval_prompts, extension_prompts
from steady.tiny.scenes import (
    ATTRIBUTES,
    BASE,
    COLOURS,
    EXTENDED,
    NEW_COLOURS,
    SHAPES,
    parse_prompt,
    vocabulary_for,
)


def _accuracy(kind: str, n: int) -> dict[str, float]:
    samples = list(extension_scenes(kind, 4321, n))
    hits = dict.fromkeys(ATTRIBUTES, 0)
    for s in samples:
        got = analyse(s.image, EXTENDED).attributes()
        for a in ATTRIBUTES:
            hits[a] += got[a] == getattr(s.scene, a)
    return {a: hits[a] / n for a in ATTRIBUTES}


def test_the_checker_reads_the_star_and_lime_on_ground_truth() -> None:
    for kind in ("star", "lime"):
        acc = _accuracy(kind, 400)
        print(f"\n{kind}: checker accuracy on 400 ground-truth scenes", acc)
        assert all(v >= 0.99 for v in acc.values()), (kind, acc)
    stars = list(extension_scenes("star", 1, 50))
    assert {s.scene.shape for s in stars} == {"star"} and all("star" in s.caption for s in stars)
    assert {s.scene.colour for s in extension_scenes("lime", 1, 20)} == {"lime"}


def test_the_extended_checker_reads_the_base_world_as_well() -> None:
    hits = [analyse(s.image, EXTENDED).attributes() == s.scene.attributes() for s in dataset(77, 300, holdout=False)]
    assert np.mean(hits) >= 0.99


def test_the_extension_is_opt_in() -> None:
    # the embedded model's world: vocabulary, data and eval prompts never name the star or lime
    assert "star" not in SHAPES and not set(NEW_COLOURS) & set(COLOURS)
    assert BASE.shapes == SHAPES and BASE.colours == COLOURS
    assert all(s.scene.shape != "star" and "lime" not in s.caption for s in dataset(0, 500, holdout=False))
    assert not any(w in p.prompt for p in eval_prompts() for w in ("star", "lime"))
    # a prompt of the old world is read with the old vocabulary; one naming the extension with the new
    s = sample(3, 5, drop_prob=0.0)
    assert check(s.image, s.caption).estimate == analyse(s.image)
    assert vocabulary_for(parse_prompt(s.caption)) is BASE
    assert parse_prompt("a large lime star on a blue background") == {
        "shape": "star", "colour": "lime", "size": "large", "background": "blue"}
    assert vocabulary_for(parse_prompt("a lime circle")) is EXTENDED
    star = next(iter(extension_scenes("star", 2, 1)))
    assert check(star.image, star.caption).correct["shape"] is True
    assert analyse(star.image).shape != "star"  # the base vocabulary cannot name it


def test_extension_prompts_are_fixed_and_apart_from_training() -> None:
    a, b = extension_prompts("star", 32), extension_prompts("star", 32)
    assert a == b and len(a) == 32 and all("star" in p.prompt for p in a)
    assert all(" large " in f" {p.prompt} " for p in extension_prompts("star-large", 8))
    assert all("lime" in p.prompt for p in extension_prompts("lime", 8))
