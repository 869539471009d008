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
    "LCM": "LCMScheduler",
    "TCD": "TCDScheduler",
    "DPM++ SDE": "DPMSolverSDEScheduler",
    "DPM++ 2M SDE": "DPMSolverMultistepScheduler",
    "DPM++ 2M SDE Karras": "DPMSolverMultistepScheduler",
    "Euler a SGM Uniform": "EulerAncestralDiscreteScheduler",
    "Euler SGM Uniform": "EulerDiscreteScheduler",
    "DPM++ 2M SGM Uniform": "DPMSolverMultistepScheduler",
    "DPM++ SDE SGM Uniform": "DPMSolverSDEScheduler",
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


def test_few_step_samplers():
    """SDE variants, A1111's SGM Uniform (trailing spacing: a 4-step Turbo/Lightning schedule starts
    at the last training timestep and stays evenly spaced), LCM's own schedule."""
    assert make_scheduler("DPM++ SDE", BASE, 5).config.use_karras_sigmas is False
    assert make_scheduler("DPM++ SDE", BASE, 5).config.noise_sampler_seed == 5
    sde = make_scheduler("DPM++ 2M SDE Karras", BASE, 1).config
    assert (sde.algorithm_type, sde.use_karras_sigmas) == ("sde-dpmsolver++", True)
    trailing = make_scheduler("Euler a SGM Uniform", BASE, 1)
    trailing.set_timesteps(4)
    assert trailing.timesteps.tolist() == [999, 749, 499, 249]
    plain = make_scheduler("Euler a", {**BASE, "timestep_spacing": "leading"}, 1)
    plain.set_timesteps(4)
    assert plain.timesteps.tolist()[0] < 999  # leading spacing never samples the noisiest timestep
    lcm = make_scheduler("LCM", BASE, 1)
    lcm.set_timesteps(4)
    assert len(lcm.timesteps) == 4 and lcm.timesteps[0] == 999


def test_one_samplers_settings_do_not_leak_into_the_next():
    """The worker builds each image's scheduler from the last one's config: Karras sigmas or
    trailing spacing chosen for one image must not reach the next image's sampler."""
    base = {**BASE, "timestep_spacing": "leading"}
    after = make_scheduler("DPM++ 2M Karras", make_scheduler("Euler a SGM Uniform", base, 1).config, 1)
    euler = make_scheduler("Euler", after.config, 1)
    assert euler.config.use_karras_sigmas is False and euler.config.timestep_spacing == "leading"
    assert make_scheduler("Euler a", euler.config, 1).config.timestep_spacing == "leading"
