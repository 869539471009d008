"""Progress off a terminal: occasional lines with counts, the share done and the time."""

from __future__ import annotations

import io

from steady.cli.progress import LineProgress, progress


def test_lines_off_a_terminal():
    out = io.StringIO()
    bar = progress(total=10, unit="image", label="eval-tiny", stream=out, every_s=3600)
    assert isinstance(bar, LineProgress)
    bar.update(3)
    assert out.getvalue() == ""  # not yet: at most one line per every_s
    bar.set_postfix_str("image 4/10")
    bar.update(7)
    line = out.getvalue().strip()
    assert line.startswith("eval-tiny: 10/10 image (100%), image 4/10, ")
    bar.close()
    assert out.getvalue().count("\n") == 1  # finished: close adds nothing


def test_a_stopped_run_still_ends_with_a_line():
    out = io.StringIO()
    bar = progress(total=10, unit="step", label="generate", stream=out, every_s=3600)
    bar.update(4)
    bar.close()
    assert out.getvalue().startswith("generate: 4/10 step (40%)")
