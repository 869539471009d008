"""eval-img2img's measures on ground truth: the asked attribute is read on a scene that has it and
not on the init image, the mask covers the shape, "outside" leaves the blur band out."""

from __future__ import annotations

import dataclasses

import numpy as np

from steady.cli.evalimg2img import BLUR_BAND, _accuracy, _cases, _mad, _rates
from steady.tiny.data import coverage, render
from steady.tiny.scenes import COLOURS, parse_prompt


def test_the_measures_read_ground_truth_right():
    cases = _cases(6, seed=3)
    for case in cases:
        scene = case["scene"]
        assert parse_prompt(case["prompts"]["colour"])["colour"] == case["asked"]["colour"] != scene.colour
        assert parse_prompt(case["prompts"]["shape"])["shape"] == case["asked"]["shape"] != scene.shape
        shape = coverage(scene.shape, scene.cx, scene.cy, scene.scale) > 0
        assert (case["mask"][shape] == 255).all()  # the mask covers the shape
        assert not (case["outside"] & (case["mask"] == 255)).any()  # and "outside" is outside it
        edge = np.argwhere(case["mask"] == 255).min(axis=0)
        assert not case["outside"][max(0, edge[0] - BLUR_BAND + 1), edge[1]]  # the blur band is left out
    asked = []
    for case in cases:
        rgb = next(c.rgb for c in COLOURS if c.name == case["asked"]["colour"])
        asked.append(render(dataclasses.replace(case["scene"], colour=case["asked"]["colour"], rgb=rgb)))
    assert _rates(asked, cases, "colour") == {"asked": 1.0, "position_kept": 1.0}
    assert _rates([c["init"] for c in cases], cases, "colour")["asked"] == 0.0
    assert _accuracy([c["init"] for c in cases], cases)["colour"] == 1.0
    assert _mad(cases[0]["init"], cases[0]["init"]) == 0.0
