"""Steady Diffusion: a local Stable Diffusion studio for minimum-spec machines.

Small public API; nothing heavy is imported here (torch/diffusers live in steady.worker).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "generate", "home", "open_catalog"]


def home():
    """The folder that holds models, outputs and the catalog (honours STEADY_HOME)."""
    from steady.config import home as _home

    return _home()


def generate(request, **kwargs):
    """Run one generation request in this process; returns the list of GenerationResult."""
    from steady.engine import run_request

    return run_request(request, **kwargs)


def open_catalog(path=None):
    """Open the SQLite catalog (migrated to the current schema)."""
    from steady.catalog.db import open_catalog as _open

    return _open(path)
