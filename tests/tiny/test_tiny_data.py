"""Tests for the tiny model's scene generator: determinism, held-out combinations, geometry.

Run:  pytest tests/tiny/test_tiny_data.py -q
"""

from __future__ import annotations

import numpy as np

from steady.tiny.data import coverage, dataset, render, sample, sample_scene
from steady.tiny.scenes import (
    HOLDOUTS,
    IMAGE_SIZE,
    SCALE_RANGES,
    SHAPE_AREA_FACTOR,
    SHAPES,
    Scene,
    is_held_out,
)


def test_dataset_is_deterministic_from_the_seed() -> None:
    a = list(dataset(5, 40))
    b = list(dataset(5, 40))
    c = list(dataset(6, 40))
    assert [s.caption for s in a] == [s.caption for s in b]
    assert [s.scene for s in a] == [s.scene for s in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert [s.scene for s in a] != [s.scene for s in c]
    # each sample depends on (seed, index) only: random access and offsets agree
    assert sample(5, 17).scene == a[17].scene
    assert [s.scene for s in dataset(5, 10, start=30)] == [s.scene for s in a[30:]]


def test_images_are_uint8_64x64_rgb_and_anti_aliased() -> None:
    s = sample(0, 0)
    assert s.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and s.image.dtype == np.uint8
    c = coverage("circle", 32.0, 32.0, 8.0)
    assert 0 < np.count_nonzero((c > 0.05) & (c < 0.95))  # soft edge pixels exist
    assert abs(float(c.sum()) - np.pi * 64) < 1.0


def test_held_out_combinations_never_appear_in_training() -> None:
    rng = np.random.default_rng(0)
    train = [sample_scene(rng, holdout=True) for _ in range(3000)]
    assert not any(is_held_out(s.attributes()) for s in train)
    rng = np.random.default_rng(0)
    evaluation = [sample_scene(rng, holdout=False) for _ in range(3000)]
    for h in HOLDOUTS:  # ... while evaluation draws them like anything else
        assert any(h.matches(s.attributes()) for s in evaluation), h.describe()


def test_background_differs_and_all_values_are_used() -> None:
    scenes = [s.scene for s in dataset(1, 1500)]
    assert all(s.background != s.colour for s in scenes)
    for attribute in ("shape", "colour", "size", "position", "background"):
        values = {getattr(s, attribute) for s in scenes}
        assert len(values) >= 2, attribute
    assert {s.shape for s in scenes} == set(SHAPES)


def test_shapes_stay_clear_of_the_border_and_sizes_stay_apart() -> None:
    for s in dataset(2, 600, holdout=False):
        img = s.image.astype(int)
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert (border == np.array(s.scene.background_rgb)).all(), s.caption
        lo, hi = SCALE_RANGES[s.scene.size]
        assert lo <= s.scene.scale <= hi
    assert SCALE_RANGES["small"][1] * 1.4 < SCALE_RANGES["large"][0]


def test_area_factors_match_the_rendered_shapes() -> None:
    for shape in SHAPES:
        c = coverage(shape, 32.0, 32.0, 10.0)
        assert abs(float(c.sum()) / (SHAPE_AREA_FACTOR[shape] * 100) - 1) < 0.02, shape


def test_render_uses_the_exact_colours() -> None:
    s = sample(3, 4).scene
    solid = Scene(**{**s.__dict__, "scale": SCALE_RANGES["large"][1], "shape": "square",
                     "cx": 32.0, "cy": 32.0})  # fmt: skip
    img = render(solid)
    assert tuple(img[32, 32]) == solid.rgb
    assert tuple(img[1, 1]) == solid.background_rgb
