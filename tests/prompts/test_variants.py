"""Wildcards / dynamic prompts and X/Y grids: parsing, expansion, and a grid run in the worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from steady.catalog import open_catalog
from steady.config import settings
from steady.errors import BadInput
from steady.jobs.runner import run
from steady.jobs.supervisor import SupervisorOptions
from steady.params import GenerationRequest
from steady.prompts.variants import expand, has_dynamic_syntax, parse_axis


def test_axes_parse_each_kind_and_name_the_argument_when_they_cannot() -> None:
    assert parse_axis("CFG: 3, 5.5", "x", "p").values == [3.0, 5.5]
    assert parse_axis("sampler: euler_a, DPM++ 2M", "x", "p").values == ["Euler a", "DPM++ 2M"]
    assert parse_axis("Prompt S/R: red, blue", "y", "a red circle").texts == ["red", "blue"]
    for text, why in [("Colour: red", "KIND"), ("Steps: 0, 10", "not a valid"), ("Prompt S/R: green, blue", "not in the prompt"),
                      ("Seed:", "no values"), ("Sampler: Fancy", "unknown sampler")]:  # fmt: skip
        with pytest.raises(BadInput) as caught:
            parse_axis(text, "x", "a red circle")
        assert why in str(caught.value) and caught.value.argument in ("x", "sampler")


def test_grid_expansion_keeps_one_seed_and_replaces_prompt_words() -> None:
    request = GenerationRequest("a red circle", x_axis="Prompt S/R: red, blue", y_axis="CFG: 3, 7").validate()
    variants = expand(request, 42, Path("/nonexistent"))
    assert [(v.x, v.y) for v in variants] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert [v.overrides for v in variants] == [
        {"seed": 42, "prompt": "a red circle", "cfg_scale": 3.0}, {"seed": 42, "prompt": "a blue circle", "cfg_scale": 3.0},
        {"seed": 42, "prompt": "a red circle", "cfg_scale": 7.0}, {"seed": 42, "prompt": "a blue circle", "cfg_scale": 7.0}]
    too_big = GenerationRequest("a red circle", x_axis="Seed: " + ", ".join(map(str, range(31)))).validate()
    with pytest.raises(BadInput, match="more than the cap"):
        expand(too_big, 1, Path("/nonexistent"))
    with pytest.raises(BadInput) as caught:
        GenerationRequest("p", y_axis="CFG: 3").validate()
    assert caught.value.argument == "y"


def test_wildcards_draw_one_prompt_per_image_reproducibly(tmp_path: Path) -> None:
    (tmp_path / "colours.txt").write_text("red\ngreen\nblue\n")
    request = GenerationRequest("a {small|large} __colours__ circle", n_images=8).validate()
    assert has_dynamic_syntax(request.prompt) and not has_dynamic_syntax("a (red:1.2) circle")
    first = [v.overrides["prompt"] for v in expand(request, 7, tmp_path)]
    assert first == [v.overrides["prompt"] for v in expand(request, 7, tmp_path)]
    assert len(first) == 8 and all(p.split()[1] in ("small", "large") and p.split()[2] in ("red", "green", "blue")
                                   for p in first)  # fmt: skip
    assert len(set(first)) > 1
    with pytest.raises(BadInput, match="no shapes.txt"):
        expand(GenerationRequest("a red __shapes__").validate(), 1, tmp_path)


def test_a_grid_run_makes_its_cells_and_a_labelled_grid_png() -> None:
    request = GenerationRequest("a red circle", x_axis="Prompt S/R: red, blue, green", y_axis="Steps: 2, 4", seed=9)
    outcome = run(request, options=SupervisorOptions(threads=1))
    assert outcome.state == "done" and len(outcome.images) == 6
    assert [r.params.prompt for r in outcome.images[:3]] == ["a red circle", "a blue circle", "a green circle"]
    assert [r.params.steps for r in outcome.images] == [2, 2, 2, 4, 4, 4]
    assert {r.params.seed for r in outcome.images} == {9}
    with Image.open(outcome.grid_path) as grid:
        assert grid.size[0] > 3 * 64 and grid.size[1] > 2 * 64 and "steady-grid" in grid.info
    with open_catalog(settings().db_path) as catalog:
        assert [r.params.prompt for r in catalog.images_of_run(outcome.run_id)][:3] == ["a red circle", "a blue circle",
                                                                                         "a green circle"]


def test_grid_labels_name_the_axis_except_for_prompt_sr() -> None:
    from steady.images.grid import axis_labels
    from steady.prompts.variants import axes_of

    request = GenerationRequest("a red circle", x_axis="Prompt S/R: red, blue", y_axis="CFG: 3, 7").validate()
    x, y = (a.to_dict() for a in axes_of(request))
    assert axis_labels(x) == ["red", "blue"]
    assert axis_labels(y) == ["CFG: 3", "CFG: 7"]


def test_an_unknown_sampler_on_an_axis_names_the_axis():
    """Found by fuzzing: `--x "Sampler: 0"` was refused naming `sampler`, a flag the user did not give."""
    import pytest

    from steady.errors import BadInput
    from steady.prompts.variants import parse_axis

    with pytest.raises(BadInput) as info:
        parse_axis("Sampler: Euler, 0", "x", "a cat")
    assert info.value.argument == "x" and "value '0' is not a valid Sampler" in info.value.why
