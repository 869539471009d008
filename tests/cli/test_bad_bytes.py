"""Bytes that are not UTF-8 on the command line or in the environment (a file name from another
system, a pasted prompt): one line naming the argument, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BAD = b"caf\xe9"  # Latin-1, not UTF-8


def _steady(args: list[bytes], env: dict[bytes, bytes]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable.encode(), b"-m", b"steady", *args], env=env, capture_output=True, timeout=120)


@pytest.mark.parametrize("where,argument", [("prompt", "prompt"), ("negative", "negative_prompt"), ("out", "out_dir"),
                                            ("home", "STEADY_HOME"), ("models", "STEADY_MODELS")])  # fmt: skip
def test_bytes_that_are_not_utf8_are_refused_in_one_line(tmp_path, where, argument):
    home = os.fsencode(tmp_path / "home")
    env = {**os.environb, b"STEADY_HOME": home, b"HF_HUB_OFFLINE": b"1"}
    args = [b"generate", b"a red circle", b"-W", b"32", b"-H", b"32", b"--steps", b"1"]
    if where == "prompt":
        args[1] = BAD
    elif where == "negative":
        args += [b"-N", BAD]
    elif where == "out":
        args += [b"--out", os.fsencode(tmp_path) + b"/" + BAD]
    elif where == "home":
        env[b"STEADY_HOME"] = home + BAD
    else:
        env[b"STEADY_MODELS"] = home + BAD
        args += [b"--model", b"anything"]
    done = _steady(args, env)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert err.startswith(f"steady: error: {argument}=") and "not valid UTF-8" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == [], "nothing may be written on refusal"
