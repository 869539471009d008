"""Fixtures for catalog tests: a fresh catalog file, image parameters, real PNGs on disk."""

from __future__ import annotations

import pytest
from PIL import Image

from steady.catalog import open_catalog
from steady.images.pngmeta import write_png
from steady.params import GenerationRequest, ImageParams


def make_params(**overrides) -> ImageParams:
    base = dict(
        prompt="a lighthouse at dusk", negative_prompt="blurry", steps=20, cfg_scale=7.0, width=64, height=64,
        seed=1234, sampler="Euler a", clip_skip=1, model_name="tiny-sd1", model_hash="0123456789",
        model_arch="sd1", device="cpu", dtype="float32", steady_version="0.1.0",
    )
    base.update(overrides)
    return ImageParams(**base)


def make_request(**overrides) -> GenerationRequest:
    base = dict(prompt="a lighthouse at dusk", negative_prompt="blurry", seed=1234, n_images=2)
    base.update(overrides)
    return GenerationRequest(**base)


def write_image(path, params: ImageParams):
    return write_png(Image.new("RGB", (8, 8), (10, 20, 30)), path, params)


@pytest.fixture
def catalog(tmp_path):
    opened = open_catalog(tmp_path / "home" / "catalog.db")
    yield opened
    opened.close()


@pytest.fixture
def params_factory():
    return make_params


@pytest.fixture
def request_factory():
    return make_request


@pytest.fixture
def png_writer():
    return write_image
