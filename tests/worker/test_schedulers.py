"""Each sampler name builds a real diffusers scheduler that keeps the checkpoint's prediction type."""

import pytest

from steady.params import SAMPLERS
from steady.worker.schedulers import make_scheduler

BASE = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
}

EXPECTED = {
    "Euler a": "EulerAncestralDiscreteScheduler",
    "Euler": "EulerDiscreteScheduler",
    "DPM++ 2M": "DPMSolverMultistepScheduler",
    "DPM++ 2M Karras": "DPMSolverMultistepScheduler",
    "DPM++ SDE Karras": "DPMSolverSDEScheduler",
    "DDIM": "DDIMScheduler",
    "UniPC": "UniPCMultistepScheduler",
    "LMS": "LMSDiscreteScheduler",
    "Heun": "HeunDiscreteScheduler",
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_builds(name):
    scheduler = make_scheduler(name, BASE, seed=7)
    assert type(scheduler).__name__ == EXPECTED[name]
    assert scheduler.config.prediction_type == "v_prediction"
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) >= 4


def test_karras_and_sde_seed():
    assert make_scheduler("DPM++ 2M Karras", BASE, 1).config.use_karras_sigmas is True
    assert make_scheduler("DPM++ 2M", BASE, 1).config.use_karras_sigmas is False
    assert make_scheduler("DPM++ SDE Karras", BASE, 99).config.noise_sampler_seed == 99
