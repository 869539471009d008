"""Prompts, as text: A1111 syntax (steady.prompts.syntax), prompt editing and alternation
schedules (steady.prompts.schedule), wildcards and X/Y variants (steady.prompts.variants).
Turning them into embeddings is the worker's encode step (steady.worker.encode)."""
