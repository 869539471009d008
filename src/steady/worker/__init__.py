"""The worker process: the only package that imports torch, diffusers and transformers."""
