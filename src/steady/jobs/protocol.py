"""Typed messages that cross the boundary between the generator and whoever listens.

Dataclasses only (they pickle across a spawn boundary and serialise to JSON for HTTP);
never positional tuples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    run_id: int | None
    image_index: int  # 0-based index of the image in its run
    n_images: int
    step: int  # steps finished for this image
    steps: int
    seconds_per_step: float
    rss_bytes: int = 0
    vram_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
