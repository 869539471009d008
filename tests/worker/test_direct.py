"""DirectRenderer: the in-process path calls the worker's own steps, so its images are the ones
`steady generate` makes; and neither loading nor rendering touches the network."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
from PIL import Image

import steady
from steady.params import GenerationRequest
from steady.worker.direct import DirectRenderer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    path = tmp_path_factory.mktemp("models") / "tiny-sd1"
    save_tiny_folder("sd1", path)
    return path


def test_direct_images_equal_a_generation(folder):
    request = GenerationRequest(prompt="a red circle", steps=3, width=32, height=32, seed=77, model=str(folder),
                                n_images=2)  # fmt: skip
    generated = [np.asarray(Image.open(r.path).convert("RGB")) for r in steady.generate(request)]
    renderer = DirectRenderer.load(request)
    made = [renderer.image_with_latents("a red circle", seed) for seed in (77, 78)]
    direct = [np.asarray(image.convert("RGB")) for image, _ in made]
    assert [d.shape for d in direct] == [(32, 32, 3)] * 2
    np.testing.assert_array_equal(direct[0], generated[0])
    np.testing.assert_array_equal(direct[1], generated[1])
    assert not np.array_equal(direct[0], direct[1])
    side = 32 // renderer.pipe.vae_scale_factor
    assert tuple(made[0][1].shape[-2:]) == (side, side)
    other = np.asarray(renderer.image("a blue square", 77).convert("RGB"))
    assert not np.array_equal(other, direct[0])  # the prompt is the one given, not the request's


def test_no_network_during_load_and_render(folder):
    """The worker's steps (load, encode, denoise, decode), run in this process under an audit hook."""
    events = []

    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            events.append((event, args))

    sys.addaudithook(hook)  # audit hooks cannot be removed; it only records
    before = len(events)
    renderer = DirectRenderer.load(GenerationRequest(prompt="x", steps=2, width=32, height=32, model=str(folder)))
    renderer.image("a red circle", 1)
    assert events[before:] == []
    # The hook really fires on a connection attempt (so the assertion above can fail).
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9), timeout=0.2)
    assert any(e == "socket.connect" for e, _ in events[before:])
