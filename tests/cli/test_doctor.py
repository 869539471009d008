"""`steady doctor`: machine, the SD 1.5 / SDXL plans, warnings, --json; always exit 0."""

from __future__ import annotations

import dataclasses
import json

import click
import pytest
from click.testing import CliRunner

from steady.cli.doctor import register
from steady.request import machine as M
from steady.request.machine import GIB, Machine


def group() -> click.Group:
    g = click.Group()
    register(g)
    return g


def small_machine() -> Machine:
    return Machine(platform="linux", cpu_logical=4, cpu_physical=2, cpu_usable=4, cpu_idle=4, cpu_bf16=False,
                   ram_total=8 * GIB, ram_available=6 * GIB, swap_total=0, swap_free=0, swappiness=60,
                   torch_version="2.13.0+cpu", torch_cuda=None, nvidia_driver=True)


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(M, "probe_machine", lambda **kw: small_machine())


def test_doctor_text(small):
    result = CliRunner().invoke(group(), ["doctor"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "RAM: 8.0 GiB total, 6.0 GiB available" in out and "Swap: none" in out
    assert "SD 1.5 at 512x512: cpu" in out and "bfloat16" in out
    assert "SDXL at 1024x1024: refused: " in out and "needs about" in out
    assert "no swap at all" in out and "CPU-only build" in out
    assert "Precision: --dtype auto on cpu is float32: this CPU has no native bfloat16" in out


def test_doctor_json(small):
    result = CliRunner().invoke(group(), ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"machine", "dtype", "backend", "plans", "warnings"}
    assert data["dtype"]["dtype"] == "float32" and "no native bfloat16" in data["dtype"]["reason"]
    sd15, sdxl = data["plans"]
    assert sd15["plan"]["strategy"] == "cpu" and sd15["refused"] is None
    assert sdxl["plan"] is None and "GiB of RAM" in sdxl["refused"]
    assert data["machine"]["ram_total"] == 8 * GIB


def test_doctor_on_this_machine():
    result = CliRunner().invoke(group(), ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["model"] for p in data["plans"]] == ["SD 1.5 at 512x512", "SDXL at 1024x1024"]


def test_doctor_plans_sdxl_in_bfloat16_on_16_gb_without_a_gpu(monkeypatch):
    sixteen = dataclasses.replace(small_machine(), ram_total=16 * GIB, ram_available=14 * GIB)
    monkeypatch.setattr(M, "probe_machine", lambda **kw: sixteen)
    out = CliRunner().invoke(group(), ["doctor"]).output
    sdxl = out[out.index("SDXL at 1024x1024"):]
    assert sdxl.startswith("SDXL at 1024x1024: cpu") and "in bfloat16" in sdxl
    assert "float32 would need about" in sdxl


def test_doctor_plans_within_the_configured_vram_limit(monkeypatch, _isolated_home):
    """vram_limit_gib = 4 on a 24 GiB card: the SDXL plan fits within 4 GiB (an offload rung) and says so."""
    big = dataclasses.replace(small_machine(), ram_total=64 * GIB, ram_available=48 * GIB,
                              gpus=[M.Gpu(0, "Example GPU", 24 * GIB, 23 * GIB)], torch_cuda="12.8")  # fmt: skip
    monkeypatch.setattr(M, "probe_machine", lambda **kw: big)
    sdxl = lambda: json.loads(CliRunner().invoke(group(), ["doctor", "--json"]).output)["plans"][1]["plan"]  # noqa: E731
    assert sdxl()["strategy"] == "gpu" and sdxl()["vram_limit"] is None
    _isolated_home.mkdir(parents=True, exist_ok=True)
    (_isolated_home / "config.toml").write_text("vram_limit_gib = 4\n")
    capped = sdxl()
    assert capped["strategy"] in ("model-offload", "sequential-offload") and capped["vram_limit"] == 4 * GIB
    assert capped["peak_vram"] <= capped["vram_budget"] < 4 * GIB
    text = CliRunner().invoke(group(), ["doctor"]).output
    assert f"SDXL at 1024x1024: {capped['strategy']} (within vram_limit_gib = 4)" in text
