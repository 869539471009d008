"""Scores of finished images: prompt adherence (steady.worker.adherence, computed by the worker
from the generating model), novelty against earlier images of the same prompt, and the
saturation rule that stops a run when it stops producing new patterns (steady.scoring.novelty)."""
