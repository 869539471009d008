"""Novelty, the saturation rule and the eval-iterate arithmetic on small synthetic cases."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from steady.scoring.evaluate import (
    IterateReport,
    RankingRow,
    SaturationRow,
    coverage,
    format_report,
    precision_at_k,
    stop_index,
)
from steady.scoring.novelty import SaturationRule, from_blob, image_feature, novelty, to_blob, variety_index


def test_feature_is_a_16x16_rgb_thumbnail_and_survives_the_blob_round_trip() -> None:
    image = Image.new("RGB", (64, 48), (255, 0, 0))
    feature = image_feature(image)
    assert feature.shape == (768,) and feature.dtype == np.float32
    assert np.allclose(feature.reshape(16, 16, 3)[..., 0], 1.0) and np.allclose(feature.reshape(16, 16, 3)[..., 1:], 0)
    assert np.allclose(from_blob(to_blob(feature)), feature, atol=1e-3)


def test_novelty_is_the_rms_distance_to_the_nearest_earlier_image() -> None:
    red, blue = image_feature(Image.new("RGB", (8, 8), (255, 0, 0))), image_feature(Image.new("RGB", (8, 8), (0, 0, 255)))
    almost_red = image_feature(Image.new("RGB", (8, 8), (230, 0, 0)))
    assert novelty(red, []) is None
    assert novelty(blue, [red]) == pytest.approx(np.sqrt(2 / 3))
    assert novelty(almost_red, [blue, red]) == pytest.approx(25 / 255 / np.sqrt(3), rel=1e-3)


def test_rule_stops_after_window_images_below_the_threshold_and_not_before_min_images() -> None:
    rule = SaturationRule(window=3, threshold=0.1, min_images=5)
    assert rule.check([None, 0.01, 0.01, 0.01]) is None  # below min_images
    reason = rule.check([None, 0.5, 0.01, 0.02, 0.03])
    assert reason is not None and "after 5 images" in reason and "0.030" in reason
    assert rule.check([None, 0.5, 0.01, 0.2, 0.03, 0.04]) is None  # a new pattern 3 images ago
    assert stop_index([None, 0.5, 0.01, 0.2, 0.03, 0.04, 0.05, 0.3], rule) == 7
    assert stop_index([None] + [0.5] * 29, rule) is None


def test_variety_index_counts_the_images_that_were_new() -> None:
    assert variety_index([None, 0.5, 0.01, 0.2], threshold=0.1) == 0.75
    assert variety_index([], threshold=0.1) == 0.0


def test_precision_coverage_and_the_summary() -> None:
    assert precision_at_k([0.9, 0.1, 0.8, 0.7, 0.0], [True, True, False, True, False], k=3) == pytest.approx(2 / 3)
    assert coverage([("a",), ("b",), ("a",), ("c",)], 2) == pytest.approx(2 / 3)
    report = IterateReport(
        ranking=[RankingRow("p", 20, 0.25, 0.67), RankingRow("q", 20, 0.8, 1.0), RankingRow("r", 20, 0.3, 0.33),
                 RankingRow("p", 20, 0.25, 1.0, "clip"), RankingRow("r", 20, 0.3, 0.67, "clip")],
        saturation=[SaturationRow("f", True, 30, 9, 2, 2, 1.0, 0.01), SaturationRow("g", True, 30, None, 5, 5, 1.0, 0.2),
                    SaturationRow("h", False, 30, None, 12, 12, 1.0, 0.2)],
        generate_seconds=10.0, score_seconds={"model": 2.0, "clip": 0.1})  # fmt: skip
    summary = report.summary()
    assert summary["ranking_runs_counted"] == 2 and summary["mean_base_rate"] == pytest.approx(0.275)
    assert summary["ranking_met"] is False  # mean top-3 0.5 < 2 x 0.275
    assert summary["score_cost_ratio"] == pytest.approx(0.2)
    clip = summary["by_scorer"]["clip"]  # each scorer is judged on its own rows and seconds
    assert clip["ranking_met"] is True and clip["mean_top3_precision"] == pytest.approx(0.835)
    assert clip["score_cost_ratio"] == pytest.approx(0.01) and summary["by_scorer"]["model"]["ranking_met"] is False
    assert "CLIP scorer" in format_report(report) and "generating model's own score" in format_report(report)
    assert summary["full_stopped_by_12"] == "1/2" and summary["saturation_full_met"] is False
    assert summary["saturation_free_met"] is True



def test_every_run_of_a_prompt_counts_on_its_own() -> None:
    """eval-iterate --runs: each (prompt, seeds) run is a row; the target pools the counted runs."""
    report = IterateReport(ranking=[RankingRow("p", 20, 0.25, 1.0, "model", 0), RankingRow("p", 20, 0.45, 0.0, "model", 20),
                                    RankingRow("p", 20, 0.6, 1.0, "model", 40)])  # fmt: skip
    summary = report.summary()
    assert summary["ranking_runs_counted"] == 2 and summary["mean_base_rate"] == pytest.approx(0.35)
    assert summary["mean_top3_precision"] == pytest.approx(0.5) and summary["ranking_met"] is False
    text = format_report(report)
    assert "seeds 0-19" in text and "seeds 20-39" in text and "seeds 40-59" in text and "not counted" in text

def _ideal_run(prompt: str, seed: int, n: int = 30) -> tuple[list[Image.Image], list[tuple[str, ...]]]:
    from steady.tiny.data import render, scene_for
    from steady.tiny.scenes import parse_prompt

    rng = np.random.default_rng(seed)
    scenes = [scene_for(parse_prompt(prompt), rng) for _ in range(n)]
    return [Image.fromarray(render(s)) for s in scenes], [tuple(s.attributes().values()) for s in scenes]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_rule_stops_an_ideal_fully_specified_run_and_not_an_open_one(seed: int) -> None:
    """Ground-truth scenes (no model): a prompt naming every attribute gives near-copies, which the
    default rule stops on by image 12; a prompt naming only the shape keeps producing new
    combinations, and the rule lets all 30 images run."""
    from steady.scoring.evaluate import saturation_row

    rule = SaturationRule()
    images, combos = _ideal_run("a small red circle at the top left on a blue background", seed)
    full = saturation_row("full", True, images, combos, rule)
    assert full.combos_full == 1 and full.stopped_at is not None and full.stopped_at <= 12
    images, combos = _ideal_run("a square", seed)
    free = saturation_row("free", False, images, combos, rule)
    assert free.stopped_at is None and free.coverage_at_stop == 1.0 and free.combos_full >= 25


def test_scene_for_keeps_the_named_attributes_and_draws_the_rest() -> None:
    from steady.tiny.data import scene_for

    rng = np.random.default_rng(0)
    scenes = [scene_for({"shape": "cross", "colour": "red"}, rng) for _ in range(40)]
    assert {s.shape for s in scenes} == {"cross"} and {s.colour for s in scenes} == {"red"}
    assert len({s.background for s in scenes}) >= 5 and "red" not in {s.background for s in scenes}
    assert len({s.position for s in scenes}) >= 6 and {s.size for s in scenes} == {"small", "large"}
    with pytest.raises(ValueError, match="background must differ"):
        scene_for({"colour": "red", "background": "red"}, rng)
    with pytest.raises(ValueError, match="unknown attribute"):
        scene_for({"mood": "happy"}, rng)
