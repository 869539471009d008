"""The embedded tiny text-to-image model: its synthetic data, attribute checker and training.

Modules (nothing here runs at import time):

- ``scenes``  the vocabulary (shapes, named colours, sizes, positions), the ``Scene``
  dataclass, caption grammar, prompt parser and held-out attribute combinations.
- ``data``    the deterministic scene generator and anti-aliased renderer.
- ``checker`` an analytic attribute checker that scores a 64x64 image against a prompt.
- ``arch``, ``common``, ``binding``, ``train``, ``polish``: the model's architecture and its training
  (``python -m steady.tiny.train``); ``common`` holds what ``train`` and ``polish`` share.
- ``evaluate`` the fixed prompt sets ``steady eval-tiny`` measures with; ``judge`` the tiny world's CLIP.

Design notes: docs/tiny-model.md; measured figures: docs/benchmarks.md.
"""
