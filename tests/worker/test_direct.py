"""DirectRenderer: the measuring commands' images are the ones `steady generate` makes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from steady.engine import run_request
from steady.params import GenerationRequest
from steady.worker.direct import DirectRenderer


def test_direct_images_equal_a_generation(tmp_path):
    from tests.fixtures.tiny_models import save_tiny_folder

    folder = tmp_path / "tiny-sd1"
    save_tiny_folder("sd1", folder)
    request = GenerationRequest(prompt="a red circle", steps=3, width=32, height=32, seed=77, model=str(folder),
                                n_images=2).check()  # fmt: skip
    generated = [np.asarray(Image.open(r.path).convert("RGB")) for r in run_request(request)]
    renderer = DirectRenderer.load(request)
    finals: list = []
    direct = [np.asarray(renderer.image("a red circle", seed, on_final_latents=finals.append).convert("RGB"))
              for seed in (77, 78)]  # fmt: skip
    assert [d.shape for d in direct] == [(32, 32, 3)] * 2
    np.testing.assert_array_equal(direct[0], generated[0])
    np.testing.assert_array_equal(direct[1], generated[1])
    assert not np.array_equal(direct[0], direct[1])
    side = 32 // renderer.pipe.vae_scale_factor
    assert len(finals) == 2 and tuple(finals[0].shape[-2:]) == (side, side)
    other = np.asarray(renderer.image("a blue square", 77).convert("RGB"))
    assert not np.array_equal(other, direct[0])  # the prompt is the one given, not the request's
