"""The UNet's backend (`--backend`, config.toml's `backend`), checked torch-free before a worker
starts: a bad value, OpenVINO not installed or asked for on a GPU is one line naming --backend."""

from __future__ import annotations

import pytest

from steady.config import settings
from steady.errors import BadInput
from steady.params import GenerationRequest
from steady.request import devices
from steady.request.check import check
from tests.fixtures.cli import run_main


def test_a_bad_backend_exits_2_with_one_line_naming_it(capsys):
    code, out = run_main(["generate", "a red circle", "--backend", "tensorrt"], capsys)
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "backend" in lines[0] and "tensorrt" in lines[0] and "openvino" in lines[0]


def test_openvino_not_installed_is_refused_before_anything_runs(monkeypatch):
    monkeypatch.setattr(devices, "openvino_installed", lambda: False)
    with pytest.raises(BadInput) as err:
        check(GenerationRequest("a red circle", backend="openvino", device="cpu"), settings())
    assert err.value.argument == "backend" and "pip install 'steady[openvino]'" in str(err.value)
    assert "\n" not in str(err.value)


def test_openvino_runs_on_the_cpu_only():
    with pytest.raises(BadInput, match="CPU only"):
        devices.choose_backend("openvino", "cuda")


def test_the_config_setting_is_the_default_and_the_request_wins(monkeypatch, _isolated_home):
    _isolated_home.mkdir(parents=True, exist_ok=True)
    (_isolated_home / "config.toml").write_text('backend = "openvino"\n')
    monkeypatch.setattr(devices, "openvino_installed", lambda: True)
    resolved = check(GenerationRequest("a red circle", device="cpu"), settings())
    assert resolved.request.backend == "openvino" and resolved.base_params().backend == "openvino"
    resolved = check(GenerationRequest("a red circle", device="cpu", backend="torch"), settings())
    assert resolved.base_params().backend == "torch"
    (_isolated_home / "config.toml").write_text('backend = "onnx"\n')
    with pytest.raises(BadInput, match="config.toml"):
        check(GenerationRequest("a red circle", device="cpu"), settings())


def test_without_a_setting_it_is_torch():
    assert check(GenerationRequest("a red circle", device="cpu"), settings()).base_params().backend == "torch"


def test_doctor_shows_the_backend_and_whether_openvino_is_there():
    from steady.cli.doctor import doctor_report

    report = doctor_report()["backend"]
    assert report["backend"] == "torch"
    assert ("OpenVINO is installed" if devices.openvino_installed() else "not installed") in report["reason"]


def test_a_run_on_openvino_that_would_not_fit_in_ram_is_refused_first_conversion_or_compile(monkeypatch):
    import dataclasses

    from steady.request.openvino import (
        IR_NAME,
        check_openvino,
        conversion_extra,
        ir_dir,
        run_extra,
    )
    from steady.request.plan import plan

    monkeypatch.setattr(devices, "openvino_installed", lambda: True)
    resolved = plan(check(GenerationRequest("a red circle", device="cpu", backend="openvino"), settings()))
    p = resolved.memory
    unet = p.footprint.params["unet"]
    check_openvino(resolved, dataclasses.replace(p, ram_budget=p.peak_ram + conversion_extra(unet)), settings().cache_dir)
    tight = dataclasses.replace(p, ram_budget=p.peak_ram + conversion_extra(unet) - 1)
    with pytest.raises(BadInput) as err:
        check_openvino(resolved, tight, settings().cache_dir)
    assert err.value.argument == "backend" and "--backend torch" in str(err.value) and "converting" in str(err.value)
    where = ir_dir(settings().cache_dir, resolved.base_params())
    where.mkdir(parents=True)
    (where / IR_NAME).write_text("<net/>")
    # Converted already: only the compile's peak, the run's weights over again, is to fit.
    assert run_extra(unet, p.dtype) < conversion_extra(unet)
    check_openvino(resolved, tight, settings().cache_dir)
    check_openvino(resolved, dataclasses.replace(p, ram_budget=p.peak_ram + run_extra(unet, p.dtype)), settings().cache_dir)
    with pytest.raises(BadInput) as err:
        check_openvino(resolved, dataclasses.replace(p, ram_budget=p.peak_ram + run_extra(unet, p.dtype) - 1),
                       settings().cache_dir)  # fmt: skip
    assert err.value.argument == "backend" and "running the UNet on OpenVINO" in str(err.value)


def test_a_first_conversion_without_room_for_the_ir_on_disk_is_refused(monkeypatch):
    import shutil
    from collections import namedtuple

    from steady.request import openvino
    from steady.request.plan import plan

    monkeypatch.setattr(devices, "openvino_installed", lambda: True)
    resolved = plan(check(GenerationRequest("a red circle", device="cpu", backend="openvino"), settings()))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30, 2**20))
    with pytest.raises(BadInput) as err:
        openvino.check_openvino(resolved, resolved.memory, settings().cache_dir)
    assert err.value.argument == "backend" and "free in" in str(err.value)
