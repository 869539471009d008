"""The recipe's hygiene: after an image the pipeline is frozen out of the collector's walk (a full
collection stops costing a pipeline-sized traversal per image), and dropping it makes its objects
collectable again."""

from __future__ import annotations

import gc
import time
import weakref

from steady.params import GenerationRequest
from steady.worker.direct import DirectRenderer


def test_freeze_after_an_image_and_unfreeze_on_drop():
    renderer = DirectRenderer.load(GenerationRequest("a red circle", steps=2))
    renderer.image("a red circle", 1)
    held = renderer.held
    gc.unfreeze()
    t0 = time.perf_counter()
    gc.collect()
    walked = time.perf_counter() - t0
    held.freeze()
    assert held.frozen and gc.get_freeze_count() > 0
    t0 = time.perf_counter()
    gc.collect()
    frozen = time.perf_counter() - t0
    assert frozen < walked  # the pipeline is no longer walked
    unet = weakref.ref(held.pipe.unet)
    held.drop()
    assert not held.frozen and gc.get_freeze_count() == 0
    del renderer
    gc.collect()
    assert unet() is None  # dropped and unfrozen: the pipeline is freed
