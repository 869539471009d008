"""Shared test setup: every test gets its own STEADY_HOME and runs offline.

The offline variables are also set at import, before anything imports huggingface_hub (which
reads them once); the fixture keeps them set for subprocesses that copy os.environ.
The repository root goes on sys.path so tests can `from tests.fixtures.tiny_models import ...`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "steady-home"
    monkeypatch.setenv("STEADY_HOME", str(home))
    monkeypatch.delenv("STEADY_MODELS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture(scope="module")
def sup(tmp_path_factory):
    """One warm worker for a test module, with a catalog of its own (each test's STEADY_HOME differs,
    so rows are read from sup.catalog): steady.generate(request, supervisor=sup) takes the whole path
    without a worker start per test, and runs in a row share the worker's pipeline."""
    from steady.catalog.db import open_catalog
    from steady.jobs.supervisor import Supervisor, SupervisorOptions

    catalog = open_catalog(tmp_path_factory.mktemp("catalog") / "catalog.db")
    # The scorer given, not read from settings: a module fixture is made before a test's STEADY_HOME.
    with Supervisor(catalog, SupervisorOptions(threads=1, scorer="model")) as supervisor:
        yield supervisor
    catalog.close()


def pytest_collection_modifyitems(config, items):
    """Slow tests (full-size models, minutes and GBs) run when asked for with `-m slow`, or by
    default where the CI variable is set; otherwise they are reported as skipped."""
    if os.environ.get("CI") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow (default when CI is set)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
