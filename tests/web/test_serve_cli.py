"""`steady serve` refuses a host or a port it cannot listen on, naming the right one, in one line
with exit code 2, before it starts anything (the real command in its own process; real sockets)."""

from __future__ import annotations

import socket
import subprocess
import sys


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "steady", "serve", *args], capture_output=True, text=True, timeout=120)
    result.output = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.output.count("\n") == 1 and result.output.startswith("steady: error: "), result.output
    return result


def test_a_host_that_does_not_resolve_is_blamed_not_the_port() -> None:
    result = _serve("--host", "nonsense.invalid", "--port", "7999")
    assert result.returncode == 2, result.output
    assert "host='nonsense.invalid'" in result.output and "--port" not in result.output


def test_an_address_this_machine_does_not_have_is_blamed() -> None:
    result = _serve("--host", "192.0.2.1", "--port", "7999", "--token", "long-enough-token")  # TEST-NET-1
    assert result.returncode == 2, result.output
    assert "host='192.0.2.1'" in result.output and "not an address of this machine" in result.output


def test_a_port_in_use_is_blamed() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve("--port", str(port))
    assert result.returncode == 2, result.output
    assert f"port={port}" in result.output and "another server" in result.output
