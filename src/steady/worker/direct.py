"""Render images of one model in this process, without the queue, the catalog or the files: for
measurements that must leave the process boundary out (the tools that time the UNet or score
many images of one model). Part of the worker (torch). Each image goes through the same
steady.request.check and steady.worker.recipe steps as a generation, so it is the image
`steady generate` makes for the same prompt, seed and settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from steady.config import settings
from steady.params import GenerationRequest
from steady.request.check import Resolved, check
from steady.request.plan import plan
from steady.worker import recipe


@dataclass(frozen=True)
class DirectRenderer:
    """A loaded model and the settings every image shares (all but the prompt and the seed)."""

    resolved: Resolved
    held: recipe.Held

    @classmethod
    def load(cls, request: GenerationRequest) -> DirectRenderer:
        """Check and plan ``request`` as a run would, load its model and place it as planned (the
        plan's CPU threads too, which the pixels depend on, as in the worker)."""
        resolved = plan(check(request, settings()))
        held = recipe.Held()
        recipe.load(held, str(resolved.model.path), resolved.base_params(), request.allow_pickle, placed_by_plan=True)
        recipe.place(held, resolved.memory)
        return cls(resolved, held)

    @property
    def pipe(self) -> Any:
        return self.held.pipe

    def image(self, prompt: str, seed: int) -> Any:
        """The PIL image of ``prompt`` at ``seed``."""
        return self.image_with_latents(prompt, seed, keep_latents=False)[0]

    def image_with_latents(self, prompt: str, seed: int, keep_latents: bool = True) -> tuple[Any, Any]:
        """The PIL image of ``prompt`` at ``seed``, and its final latents."""
        params = dataclasses.replace(self.resolved.base_params(), prompt=prompt, seed=seed)
        recipe.adapt(self.held, params)  # the request's LoRAs (its prompt's tags, resolved by check)
        return recipe.make(self.held, params, keep_latents=keep_latents)
