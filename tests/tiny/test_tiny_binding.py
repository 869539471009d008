"""The position-binding curriculum (step 3a of the tiny model's training): its phase syntax, its
scene kinds, its loss, and a toy-length run through ``train``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from steady.tiny import arch as A
from steady.tiny.binding import Phase, high_t, kind_scenes, parse_kinds, parse_phases, x0_error
from steady.tiny.scenes import POSITION_NAMES, is_held_out
from steady.tiny.train import TrainConfig, train, training_noise

TOY = TrainConfig(threads=1, vae_steps=3, vae_batch=8, vae_eval_every=0, pool=64, unet_steps=3, unet_stop=0,
                  unet_batch=8, eval_every=3, eval_per_holdout=1, eval_seen=1, log_every=1, decoder_steps=0,
                  bind_scenes=16, bind_batch=4, bind_phases="", bind_weight=0.0, latent_edge_weight=0.0)  # fmt: skip


def test_phases_parse_and_bad_specs_name_the_option() -> None:
    assert parse_phases("position-only:600, position-only+colours:400,colours+full:5") == [
        Phase(("position-only",), 600),
        Phase(("position-only", "colours"), 400),
        Phase(("colours", "full"), 5),
    ]
    assert parse_phases("") == []
    assert parse_kinds("colours+full") == ("colours", "full")
    for spec, fragment in (
        ("position-only", "KIND[+KIND]:STEPS"),
        ("colours:0", "STEPS >= 1"),
        ("colors:10", "unknown scene kind 'colors'"),
        ("full:x", "KIND[+KIND]:STEPS"),
    ):
        with pytest.raises(ValueError) as err:
            parse_phases(spec)
        assert str(err.value).startswith(f"bind_phases={spec!r}") and fragment in str(err.value)
    with pytest.raises(ValueError, match="bind_keep='full\\+shapes'"):
        parse_kinds("full+shapes")


def test_scene_kinds_vary_what_they_promise_and_respect_the_holdouts() -> None:
    rng = np.random.default_rng(0)
    only = kind_scenes("position-only", rng, 300)
    assert {(s.shape, s.colour, s.size, s.background) for s in only} == {("circle", "red", "large", "blue")}
    assert {s.position for s in only} == set(POSITION_NAMES)
    colours = kind_scenes("colours", rng, 300)
    assert {(s.shape, s.size) for s in colours} == {("circle", "large")}
    assert len({s.colour for s in colours}) >= 8 and len({s.background for s in colours}) >= 8
    assert all(s.colour != s.background for s in colours)
    assert not any(is_held_out({"shape": s.shape, "colour": s.colour, "size": s.size, "position": s.position,
                                "background": s.background}) for s in colours)  # fmt: skip
    assert "pink" not in {s.colour for s in colours}  # large pink is held out


def test_binding_loss_is_the_clean_latent_error_at_high_timesteps() -> None:
    from diffusers import DDPMScheduler

    torch.manual_seed(0)
    unet = A.build_unet(A.Architecture()).eval()
    sched = DDPMScheduler(**A.SCHEDULE)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 4, 16, 16, generator=gen)
    noisy, noise, ts = high_t(x0, 950, lambda shape, gen: training_noise(shape, 0.15, gen), sched, gen)
    assert ts.min() >= 950 and ts.max() <= 999
    hidden = torch.randn(6, 77, 64, generator=gen)
    with torch.no_grad():
        err = x0_error(unet, noisy, noise, ts, hidden, sched.alphas_cumprod)
        pred = unet(noisy, ts, hidden).sample
    a = sched.alphas_cumprod[ts].view(-1, 1, 1, 1)
    x0_pred = (noisy - (1 - a).sqrt() * pred) / a.sqrt()
    assert torch.allclose(err, ((x0_pred - x0) ** 2).mean(dim=(1, 2, 3)), rtol=1e-4)


def test_train_runs_the_curriculum_then_keeps_the_binding_loss(tmp_path: Path) -> None:
    log = train(replace(TOY, bind_phases="position-only:2,colours+full:2", bind_weight=0.5), tmp_path / "bound")
    assert [(r["step"], r["kinds"]) for r in log["bind_loss"]] == [
        (1, "position-only"),
        (2, "position-only"),
        (3, "colours+full"),
        (4, "colours+full"),
    ]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in log["bind_loss"])
    ratios = log["bind_ratio"]
    assert [r["kinds"] for r in ratios] == ["colours+full", "step 3 (EMA)"]
    assert all(0.5 < r["ratio"] < 2.0 for r in ratios)
    assert log["timings_s"]["bind"] > 0 and len(log["unet_loss"]) == 3
    plain = train(replace(TOY, seed=TOY.seed), tmp_path / "plain")
    assert plain["bind_loss"] == [] and "bind" not in plain["timings_s"]
    assert [r["loss"] for r in plain["unet_loss"]] != [r["loss"] for r in log["unet_loss"]]
