"""Step 3 of steady.worker.recipe, continued: the image's LoRAs folded into the weights they change,
where that is cheap, so that a step costs what the base model's step costs. Part of the worker (torch).

Unmerged, every adapted layer runs its two low-rank products beside the base one, each step. On a
small model that is most of a step: on the embedded model with the first, 56-layer ``tiny-lcm``
(attention and resnet convolutions), a UNet call takes 27 ms unmerged against 17 ms merged or
without the LoRA (docs/benchmarks.md). So after
``set_adapters``, the adapted layers are merged (peft's own ``merge``: W + scale · B·A), each
layer's base weight copied first, and each peft layer is then replaced in its parent module by its
base layer (the wrappers kept aside): a merged layer runs as a plain one, and diffusers' per-image
walks over every module (``_execution_device``: 9.7 ms with its 56 wrappers in place, 1.6 ms
without) see the model's own modules only. Taking the LoRAs off, or changing a weight, puts the
wrappers back and restores the copies, so the base model's pixels come back exactly as the
unmerged design promises; unmerging by subtraction would not (bfloat16 and float16 round).

The copies cost memory, so the merge happens only where the weights the LoRAs change take at most
``COPY_LIMIT`` bytes, all on the CPU and not managed by an offload hook: the small models, where
the adapters' overhead matters. A larger model (an SD 1.5 LoRA changes about 0.8 GiB of UNet
weights) keeps the adapters unmerged, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COPY_LIMIT = 64 * 1024 * 1024  # bytes of base weights copied to merge (the embedded model's LoRA: < 1 MiB)
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


@dataclass
class FusedLoras:
    """The LoRAs merged into ``pipe`` and the base weights they replaced."""

    signature: tuple[Any, ...] = ()  # what is merged: ((adapter, {part: weight}), ...); () = nothing
    originals: list[tuple[Any, Any]] = field(default_factory=list)  # (peft layer, its base weight's copy)
    wrappers: list[tuple[Any, str, Any]] = field(default_factory=list)  # (parent module, attribute, peft layer)

    def restore(self) -> None:
        """The peft layers back in place, the base weights back bit for bit, and the layers unmerged
        (their adapters run beside)."""
        import torch

        for parent, attribute, layer in self.wrappers:
            setattr(parent, attribute, layer)
        self.wrappers.clear()
        with torch.no_grad():
            for layer, weight in self.originals:
                layer.get_base_layer().weight.copy_(weight)
                layer.merged_adapters.clear()
        self.originals.clear()
        self.signature = ()


def signature(names: list[str], weights: list[dict[str, float]]) -> tuple[Any, ...]:
    return tuple((name, tuple(sorted(w.items()))) for name, w in zip(names, weights))


def fuse(pipe: Any, fused: FusedLoras, names: list[str], weights: list[dict[str, float]]) -> bool:
    """Merge the active adapters ``names`` (at ``weights``, already set) into ``pipe`` when their base
    weights are small and on the CPU; ``fused`` remembers what to restore. True when merged."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    places: list[tuple[Any, str]] = []
    for part in COMPONENTS:
        component = getattr(pipe, part, None)
        if component is None:
            continue
        if getattr(component, "_hf_hook", None) is not None or getattr(component, "_diffusers_hook", None) is not None:
            return False  # offloaded: accelerate or diffusers moves the weights, merging is not ours to do
        places += [(component, name) for name, m in component.named_modules()
                   if isinstance(m, BaseTunerLayer) and set(m.active_adapters) & set(getattr(m, "lora_A", {}))]  # fmt: skip
    layers = [component.get_submodule(name) for component, name in places]
    bases = [layer.get_base_layer().weight for layer in layers]
    if not layers or any(w.device.type != "cpu" for w in bases):
        return False
    if sum(w.numel() * w.element_size() for w in bases) > COPY_LIMIT:
        return False
    with torch.no_grad():
        for layer, weight in zip(layers, bases):
            fused.originals.append((layer, weight.detach().clone()))
            layer.merge()
    for (component, name), layer in zip(places, layers):
        parent_name, _, attribute = name.rpartition(".")
        parent = component.get_submodule(parent_name) if parent_name else component
        setattr(parent, attribute, layer.get_base_layer())
        fused.wrappers.append((parent, attribute, layer))
    fused.signature = signature(names, weights)
    return True
