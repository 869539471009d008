"""Progress for long commands: a tqdm bar on a terminal, plain lines a log can read elsewhere.

    bar = progress(total=80, unit="step", label="generate")
    bar.update(5); bar.set_postfix_str("image 1/4"); bar.write("a line"); bar.close()

Off a terminal (a pipe, a file, CI) a line goes to stderr at most every ``every_s`` seconds and
at the end: "generate: 40/80 step (50%), image 2/4", so a long run is never silent.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import click


def progress(total: int, unit: str, label: str, stream: TextIO | None = None, every_s: float = 10.0) -> Any:
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=label, dynamic_ncols=True, leave=True, file=stream)
    return LineProgress(total, unit, label, stream, every_s)


class LineProgress:
    """tqdm's update/set_postfix_str/write/close, printed as occasional lines."""

    def __init__(self, total: int, unit: str, label: str, stream: TextIO, every_s: float):
        self.total, self.unit, self.label, self.stream, self.every_s = total, unit, label, stream, every_s
        self.n = 0
        self.postfix = ""
        self.started = time.monotonic()
        self.last = self.started

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.n >= self.total:
            self.last = now
            self._line()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def write(self, text: str) -> None:
        click.echo(text, file=sys.stdout)

    def close(self) -> None:
        if self.n < self.total:
            self._line()

    def _line(self) -> None:
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        elapsed = time.monotonic() - self.started
        click.echo(f"{self.label}: {self.n}/{self.total} {self.unit}{share}{extra}, {elapsed:.0f} s", file=self.stream)
