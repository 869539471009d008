"""load_pipeline on diffusers folders and original-layout single files (written by export).

The same tiny model saved both ways must load to the same weights and draw identical images:
that checks the exporter (diffusers -> original keys) against diffusers' own import conversion
as used by the loader, and the shape-derived config against the model's real config.
"""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import torch

from steady.errors import BadInput, ModelError
from steady.models.detect import inspect_model
from steady.worker.loader import load_pipeline
from tests.fixtures.tiny_models import save_tiny_folder, save_tiny_single_file

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def draw(pipe, seed=3):
    out = pipe(
        "a red circle", negative_prompt="blurry", num_inference_steps=2, height=32, width=32,
        generator=torch.Generator().manual_seed(seed), output_type="np",
    )
    return out.images


def same_weights(a, b):
    for name in COMPONENTS:
        if getattr(a, name, None) is None:
            continue
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert set(sa) == set(sb), name
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k}"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    out = {}
    for arch in ("sd1", "sd2", "sd2v", "sdxl"):
        out[arch, "folder"] = save_tiny_folder(arch, d / f"{arch}-folder")
    for arch in ("sd1", "sd2", "sdxl"):
        out[arch, "file"] = save_tiny_single_file(arch, d / f"{arch}.safetensors")
    return out


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_folder_and_single_file_draw_identical_images(tiny_files, arch):
    folder = load_pipeline(inspect_model(tiny_files[arch, "folder"]), "cpu", torch.float32)
    pred = "epsilon" if arch == "sd2" else None  # the v-check is arbitrary on random weights
    single = load_pipeline(inspect_model(tiny_files[arch, "file"]), "cpu", torch.float32, prediction_type=pred)
    assert type(folder) is type(single)
    assert type(folder.scheduler) is type(single.scheduler)
    public = lambda c: {k: v for k, v in dict(c).items() if not k.startswith("_")}  # noqa: E731
    assert public(folder.scheduler.config) == public(single.scheduler.config)
    assert folder.tokenizer.pad_token == single.tokenizer.pad_token
    same_weights(folder, single)
    a, b = draw(folder), draw(single)
    assert a.shape == (1, 32, 32, 3) and a.std() > 0.01
    assert np.array_equal(a, b)


def test_sd2_single_file_honours_prediction_type(tiny_files):
    info = inspect_model(tiny_files["sd2", "file"])
    v = load_pipeline(info, "cpu", torch.float32, prediction_type="v_prediction")
    eps = load_pipeline(info, "cpu", torch.float32, prediction_type="epsilon")
    assert v.scheduler.config.prediction_type == "v_prediction"
    assert eps.scheduler.config.prediction_type == "epsilon"
    # with v_prediction the single file is the SD 2.1 768-v model: same as the sd2v folder
    v_folder = load_pipeline(inspect_model(tiny_files["sd2v", "folder"]), "cpu", torch.float32)
    assert type(v.scheduler) is type(v_folder.scheduler)
    assert np.array_equal(draw(v), draw(v_folder))
    assert not np.array_equal(draw(v), draw(eps))
    # an explicit override also applies to a folder
    forced = load_pipeline(inspect_model(tiny_files["sd2v", "folder"]), "cpu", torch.float32, prediction_type="epsilon")
    assert forced.scheduler.config.prediction_type == "epsilon"


def test_sd2_without_prediction_type_runs_the_check(tiny_files):
    pipe = load_pipeline(inspect_model(tiny_files["sd2", "file"]), "cpu", torch.float32)
    assert pipe.scheduler.config.prediction_type in ("epsilon", "v_prediction")


def test_bad_prediction_type(tiny_files):
    with pytest.raises(BadInput) as e:
        load_pipeline(inspect_model(tiny_files["sd1", "file"]), "cpu", torch.float32, prediction_type="x0")
    assert e.value.argument == "prediction_type"


def test_pickle_refused_unless_allowed(tiny_files, tmp_path):
    from safetensors.torch import load_file

    ckpt = tmp_path / "old.ckpt"
    torch.save({"state_dict": load_file(tiny_files["sd1", "file"]), "global_step": 1}, ckpt)
    info = inspect_model(ckpt)
    with pytest.raises(ModelError, match=r"is a pickle \(.ckpt/.pt\), which can run code when loaded; convert it to .safetensors or pass --allow-pickle") as e:
        load_pipeline(info, "cpu", torch.float32)
    assert e.value.argument == "model" and e.value.value == str(ckpt)
    pipe = load_pipeline(info, "cpu", torch.float32, allow_pickle=True)
    reference = load_pipeline(inspect_model(tiny_files["sd1", "file"]), "cpu", torch.float32)
    same_weights(pipe, reference)
    assert np.array_equal(draw(pipe), draw(reference))


def test_pickle_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(ModelError, match="not a Stable Diffusion checkpoint"):
        load_pipeline(inspect_model(bad), "cpu", torch.float32, allow_pickle=True)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x80\x04not a pickle at all" * 10)
    with pytest.raises(ModelError, match="cannot read the pickle checkpoint"):  # refused when inspected
        load_pipeline(inspect_model(garbage), "cpu", torch.float32, allow_pickle=True)


def test_single_file_missing_weights_is_reported(tiny_files, tmp_path):
    from safetensors.torch import load_file, save_file

    sd = load_file(tiny_files["sd1", "file"])
    del sd["model.diffusion_model.middle_block.0.in_layers.0.weight"]  # not needed to detect the shapes
    path = tmp_path / "holey.safetensors"
    save_file(sd, path)
    info = inspect_model(path)
    with pytest.raises(ModelError, match=r"lacks 1 unet weights \(first: mid_block.resnets.0.norm1.weight\)") as e:
        load_pipeline(info, "cpu", torch.float32)
    assert e.value.argument == "model"


def test_loading_makes_no_network_connection(tiny_files):
    events = _NetworkEvents.install()
    with events.recording():
        for arch in ("sd1", "sdxl"):
            load_pipeline(inspect_model(tiny_files[arch, "file"]), "cpu", torch.float32)
            load_pipeline(inspect_model(tiny_files[arch, "folder"]), "cpu", torch.float32)
    assert events.seen == []


class _NetworkEvents:
    """An audit hook (which cannot be removed, so installed once) recording socket use while on."""

    _instance = None

    def __init__(self):
        self.on = False
        self.seen: list[tuple[str, str]] = []

    @classmethod
    def install(cls):
        if cls._instance is None:
            cls._instance = cls()
            sys.addaudithook(cls._instance._hook)
            socket.getaddrinfo  # noqa: B018  (module imported so its events exist)
        cls._instance.seen.clear()
        return cls._instance

    def _hook(self, event, args):
        if self.on and event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
            self.seen.append((event, repr(args)[:200]))

    class _On:
        def __init__(self, owner):
            self.owner = owner

        def __enter__(self):
            self.owner.on = True

        def __exit__(self, *exc):
            self.owner.on = False

    def recording(self):
        return self._On(self)


def test_export_half_precision_streams_a_valid_file(tmp_path):
    import json
    import os
    import stat
    import struct

    from tests.fixtures.export import save_single_file
    from tests.fixtures.tiny_models import make_tiny_pipeline

    pipe = make_tiny_pipeline("sd1")
    path = save_single_file(pipe, tmp_path / "half.safetensors", "sd1", dtype=torch.float16)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert n % 8 == 0 and header.pop("__metadata__") == {"format": "pt"}
    assert {t["dtype"] for t in header.values()} == {"F16"}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    loaded = load_pipeline(inspect_model(path), "cpu", torch.float32)
    assert loaded.unet.dtype == torch.float32
    want = pipe.unet.state_dict()
    for k, v in loaded.unet.state_dict().items():
        assert torch.equal(v, want[k].half().float()), k
