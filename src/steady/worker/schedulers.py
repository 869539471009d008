"""Sampler names users know (A1111/Forge) mapped to diffusers schedulers.

The mapping follows diffusers' own table ("A1111/k-diffusion -> diffusers" in the scheduler
docs). Every scheduler is built from the checkpoint's own scheduler config, so
prediction_type (epsilon / v_prediction) and the beta schedule are kept.
"""

from __future__ import annotations

from typing import Any

from steady.params import SAMPLERS, canonical_sampler


_CHECKPOINT_KEY = "_steady_checkpoint_config"


def _spec(name: str) -> tuple[str, dict[str, Any]]:
    """Scheduler class name and config overrides for a canonical sampler name."""
    table: dict[str, tuple[str, dict[str, Any]]] = {
        "Euler a": ("EulerAncestralDiscreteScheduler", {}),
        "Euler": ("EulerDiscreteScheduler", {}),
        "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
        "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
        "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
        "DDIM": ("DDIMScheduler", {}),
        "UniPC": ("UniPCMultistepScheduler", {}),
        "LMS": ("LMSDiscreteScheduler", {}),
        "Heun": ("HeunDiscreteScheduler", {}),
        "LCM": ("LCMScheduler", {}),
        "TCD": ("TCDScheduler", {}),
        "DPM++ SDE": ("DPMSolverSDEScheduler", {"use_karras_sigmas": False}),
        "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
        "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    }
    # "SGM Uniform" (A1111's schedule type; ComfyUI's sgm_uniform) is trailing timestep spacing in
    # diffusers: the last step lands on the last training timestep, as Turbo/Lightning models expect.
    for sampler in ("Euler a", "Euler", "DPM++ 2M", "DPM++ SDE"):
        class_name, overrides = table[sampler]
        table[f"{sampler} SGM Uniform"] = (class_name, {**overrides, "timestep_spacing": "trailing"})
    assert set(table) == set(SAMPLERS), "every sampler in params.SAMPLERS needs a scheduler"
    return table[name]


def make_scheduler(sampler: str, base_config: Any, seed: int):
    """A fresh scheduler for one image.

    `seed` matters only for stochastic samplers whose noise is not drawn from the pipeline's
    generator (DPM++ SDE draws from a Brownian tree seeded here), so that the same
    parameters give the same pixels.
    """
    import diffusers

    class_name, overrides = _spec(canonical_sampler(sampler))
    cls = getattr(diffusers, class_name)
    # Every scheduler starts from the checkpoint's own config, not the last sampler's: one
    # sampler's overrides (Karras sigmas, trailing spacing) must not leak into the next image's
    # sampler. The checkpoint's config rides along under a hidden key (diffusers keeps keys that
    # start with "_" in a scheduler's config and passes them to no constructor).
    checkpoint = dict(base_config.get(_CHECKPOINT_KEY) or base_config)
    checkpoint.pop(_CHECKPOINT_KEY, None)
    config = {**checkpoint, **overrides, _CHECKPOINT_KEY: checkpoint}
    if class_name == "DPMSolverSDEScheduler":
        config["noise_sampler_seed"] = seed
    # from_config ignores keys a scheduler does not know (with a log line), which is what
    # lets one checkpoint's config feed every scheduler.
    return cls.from_config(config)
