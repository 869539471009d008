"""The house's layers hold (pyproject.toml's import-linter contracts: each part imports only from
the parts below it; only the worker imports torch, diffusers or transformers), and no module
imports itself back through any chain. A new cycle or a torch import in the wrong place fails here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("import-linter is missing: pip install -e '.[test]'")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_imports_itself_back():
    graph = grimp.build_graph("steady")
    cycles = set()
    for a in graph.modules:
        for b in graph.find_modules_directly_imported_by(a):
            if b.startswith("steady") and graph.find_shortest_chain(importer=b, imported=a):
                cycles.add(tuple(sorted((a, b))))
    assert sorted(cycles) == []


def test_the_cycle_check_can_fail(tmp_path, monkeypatch):
    """The same check on a tiny package with a cycle finds it."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclepkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclepkg")
    assert graph.find_shortest_chain(importer="cyclepkg.b", imported="cyclepkg.a")
    assert graph.find_shortest_chain(importer="cyclepkg.a", imported="cyclepkg.b")
