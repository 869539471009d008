"""`steady eval-iterate` refuses bad arguments with one line naming them, before loading anything
(the measurement itself takes ~9 minutes and runs by hand: docs/iterate.md)."""

from __future__ import annotations

import pytest

from tests.fixtures.cli import run_main


@pytest.mark.parametrize(("argv", "named"), [(["--threads", "-1"], "threads=-1"), (["--images", "2"], "images=2"), (["--runs", "0"], "runs=0"),
                                              (["--clip", "/no/such/clip"], "clip='/no/such/clip'")])
def test_bad_arguments_exit_2_naming_them(argv: list[str], named: str, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STEADY_HOME", str(tmp_path / "home"))
    code, captured = run_main(["eval-iterate", *argv], capsys)
    assert code == 2
    assert named in captured.err and len(captured.err.strip().splitlines()) == 1
