"""Steady Diffusion: a local Stable Diffusion studio for minimum-spec machines.

Small public API; nothing heavy is imported here (torch/diffusers live in steady.worker).
"""

from __future__ import annotations

from steady.version import __version__

__all__ = ["__version__", "generate", "home", "open_catalog"]


def home():
    """The folder that holds models, outputs and the catalog (honours STEADY_HOME)."""
    from steady.config import home as _home

    return _home()


def generate(request, cfg=None, **kwargs):
    """Run one generation request the way `steady generate` does (checked, planned, queued, made
    by a supervised worker process, recorded); returns its list of GenerationResult.
    ``kwargs``: on_event, should_stop, options (steady.jobs.supervisor.SupervisorOptions)."""
    from steady.jobs.runner import run
    from steady.jobs.supervisor import raise_failure

    outcome = run(request, cfg, **kwargs)
    raise_failure(outcome)
    return outcome.images


def open_catalog(path=None):
    """Open the SQLite catalog (migrated to the current schema)."""
    from steady.catalog.db import open_catalog as _open

    return _open(path)
