"""A1111's LoRA tags in a prompt: found, read and taken out of the text. Torch-free.

    lora_tags("a cat <lora:film-grain:0.8>", "prompt")   # [LoraTag(name='film-grain', te=0.8, unet=0.8, ...)]
    strip_lora_tags("a cat <lora:film-grain:0.8>")       # 'a cat '

The spellings A1111 reads (modules/extra_networks.py and extensions-builtin/Lora):

    <lora:NAME>                  weight 1
    <lora:NAME:W>                the text encoder and the UNet at W
    <lora:NAME:WTE:WUNET>        the text encoder at WTE, the UNet at WUNET (A1111's order: te first)
    <lora:NAME:te=W:unet=W>      the same by name; a named value wins over a positional one

``<lyco:...>`` (the LyCORIS extension's spelling, an alias in A1111) is the same tag. Other named
values (``dyn=``, LyCORIS' dynamic rank) are not supported; they are reported and ignored. A tag
may stand in the prompt or in the negative prompt, several at once.

A1111 takes the tags out of the text before anything else reads it (prompt editing, emphasis,
BREAK), so the text encoder never sees them; the recorded prompt keeps them. ``strip_lora_tags``
does the same here: the worker encodes the stripped text (steady.worker.pipeline) and scores
adherence against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from steady.errors import BadInput

# A1111's extra-network pattern, for the two names that mean a LoRA.
TAG = re.compile(r"<(lora|lyco):([^>]+)>")


@dataclass(frozen=True)
class LoraTag:
    """One ``<lora:...>`` tag as written: the name to look up and its two weights."""

    name: str
    te: float  # text-encoder weight
    unet: float  # UNet weight
    text: str  # the tag as it stands in the prompt
    ignored: tuple[str, ...] = ()  # named values that are not supported (``dyn=8``)


def has_lora_tags(text: str) -> bool:
    return TAG.search(text) is not None


def strip_lora_tags(text: str) -> str:
    """The text without its LoRA tags, as A1111 hands it to the text encoder (nothing else changes)."""
    return TAG.sub("", text)


def lora_tags(text: str, argument: str) -> list[LoraTag]:
    """Every LoRA tag in ``text``, in order; BadInput naming ``argument`` (``prompt`` or
    ``negative_prompt``) when a tag has no name or a weight that is not a finite number."""
    return [_tag(match.group(0), match.group(2), argument) for match in TAG.finditer(text)]


def _tag(text: str, inside: str, argument: str) -> LoraTag:
    items = inside.split(":")
    name = items[0].strip()
    if not name:
        raise BadInput(argument, text, "the LoRA tag has no name; write <lora:NAME:WEIGHT>")
    positional: list[str] = []
    named: dict[str, str] = {}
    for item in items[1:]:
        key, sep, value = item.partition("=")
        if sep:
            named[key.strip()] = value
        else:
            positional.append(item)
    if len(positional) > 2:
        raise BadInput(argument, text, "a LoRA tag takes at most two weights: <lora:NAME:TE_WEIGHT:UNET_WEIGHT>")
    te = _weight(named.get("te", positional[0] if positional else "1"), text, argument)
    unet = _weight(named.get("unet", positional[1] if len(positional) > 1 else str(te)), text, argument)
    ignored = tuple(f"{key}={value}" for key, value in named.items() if key not in ("te", "unet"))
    return LoraTag(name=name, te=te, unet=unet, text=text, ignored=ignored)


def _weight(value: str, text: str, argument: str) -> float:
    try:
        weight = float(value)
    except ValueError:
        raise BadInput(argument, text, f"the LoRA weight {value.strip()!r} is not a number") from None
    if not math.isfinite(weight):
        raise BadInput(argument, text, f"the LoRA weight {value.strip()!r} is not a finite number")
    return weight
