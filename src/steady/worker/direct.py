"""Render images of one model in this process, without the queue, the catalog or files: what the
measuring commands (eval-tiny, eval-iterate) and the tools that score many images of one model use.
Part of the worker (imports torch through the pipeline). Each image goes through the same
check_and_plan → image_params → render path as a generation, so it is the image `steady generate`
makes for the same prompt, seed and settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steady.engine import Plan, check_and_plan, image_params
from steady.params import GenerationRequest
from steady.worker.loader import load_pipeline
from steady.worker.pipeline import DTYPES, quiet_libraries, render


@dataclass(frozen=True)
class DirectRenderer:
    """A loaded model and the settings every image shares (all but the prompt and the seed)."""

    request: GenerationRequest
    plan: Plan
    pipe: Any

    @classmethod
    def load(cls, request: GenerationRequest, plan: Plan | None = None) -> DirectRenderer:
        """Load the request's model (``plan``: one already made by check_and_plan, to check it first)."""
        plan = plan or check_and_plan(request)
        quiet_libraries()
        pipe = load_pipeline(plan.info, device=plan.device, dtype=DTYPES[plan.dtype], allow_pickle=False)
        return cls(request, plan, pipe)

    def image(self, prompt: str, seed: int, on_final_latents: Callable[[Any], None] | None = None) -> Any:
        """The PIL image of ``prompt`` at ``seed``; ``on_final_latents`` receives its last latents."""
        params = image_params(GenerationRequest(**{**self.request.to_dict(), "prompt": prompt}), self.plan, seed)
        return render(self.pipe, params, self.plan.device, on_final_latents=on_final_latents)
