"""A1111's `parameters` text ("infotext"): build it and parse it.

The format, as AUTOMATIC1111/stable-diffusion-webui writes it (modules/processing.py
create_infotext) and reads it back (modules/infotext_utils.py parse_generation_parameters):

    line 1..n   the prompt (may span lines)
    "Negative prompt: ..."  only when non-empty; may span lines too
    last line   "Key: value, Key: value, ..."; a value containing ',', ':' or a newline is
                written as a JSON string ("a: 1, b: 2"), so commas inside quotes do not split.

The last line only counts as the key/value line when it holds at least three pairs; otherwise
it is part of the prompt (A1111 does the same, so prompts that end in "a: b" survive).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Keys as A1111 and its extensions write them: "Steps", "CFG scale", "Lora hashes",
# "Hires resize-1", "ADetailer model 2nd", "Module 1".
_KEY = re.compile(r"\s*([A-Za-z0-9_][\w \-/.]*?)\s*:\s*")
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_MIN_PAIRS = 3

# A1111 label -> our ImageParams field name, and the type we convert the value to.
_KNOWN: dict[str, tuple[str, type]] = {
    "Steps": ("steps", int),
    "Sampler": ("sampler", str),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Model hash": ("model_hash", str),
    "Model": ("model_name", str),
    "Clip skip": ("clip_skip", int),
}


def format_number(value: Any) -> Any:
    """A1111 prints 7 for a CFG scale of 7.0 (the UI sends whole numbers as ints) and 7.5 as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def quote(value: Any) -> str:
    """Quote a value the way A1111 does: as JSON only when it holds ',', ':' or a newline."""
    text = str(format_number(value))
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def build(prompt: str, negative_prompt: str, pairs: dict[str, Any]) -> str:
    """The full infotext; pairs whose value is None or "" are left out, as A1111 does."""
    line = ", ".join(f"{key}: {quote(value)}" for key, value in pairs.items() if value is not None and value != "")
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()


def split_pairs(line: str) -> dict[str, str]:
    """Parse 'Key: value, Key: "quoted, value", ...' into a dict (values unquoted).

    A hand-written scanner rather than one regex: a quoted value is read with the JSON
    decoder, so escaped quotes and backslashes inside it are handled exactly; a piece with
    no 'Key:' (an old, unquoted value that held a comma) is glued back onto the value before it.
    """
    pairs: dict[str, str] = {}
    last_key: str | None = None
    pos = 0
    decoder = json.JSONDecoder()
    while pos < len(line):
        match = _KEY.match(line, pos)
        if match is None:
            end = line.find(",", pos)
            end = len(line) if end < 0 else end
            if last_key is not None:
                pairs[last_key] += "," + line[pos:end].rstrip()
            pos = end + 1
            continue
        key = match.group(1)
        pos = match.end()
        value, pos = _read_value(line, pos, decoder)
        pairs[key] = value
        last_key = key
    return pairs


def _read_value(line: str, pos: int, decoder: json.JSONDecoder) -> tuple[str, int]:
    # Internal helper; returns the value and where the next pair starts.
    if pos < len(line) and line[pos] == '"':
        try:
            value, end = decoder.raw_decode(line, pos)
        except json.JSONDecodeError:
            value, end = None, pos
        if isinstance(value, str):
            rest = line.find(",", end)
            if line[end:rest if rest >= 0 else len(line)].strip() == "":
                return value, (len(line) if rest < 0 else rest + 1)
    end = line.find(",", pos)
    if end < 0:
        return line[pos:].strip(), len(line)
    return line[pos:end].strip(), end + 1


@dataclass
class Infotext:
    """A parsed `parameters` text. `params` uses our ImageParams names for what A1111 and we
    share (prompt, steps, cfg_scale, width, ...) and keeps every other pair under its label."""

    prompt: str
    negative_prompt: str
    pairs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def parse(text: str) -> Infotext:
    """Parse an A1111 infotext; never raises on odd input, it records warnings instead."""
    *lines, last = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    pairs = split_pairs(last)
    if len(pairs) < _MIN_PAIRS:
        lines.append(last)
        pairs = {}
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if not in_negative and line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result = Infotext(prompt="\n".join(prompt_lines), negative_prompt="\n".join(negative_lines), pairs=pairs)
    result.params = {"prompt": result.prompt, "negative_prompt": result.negative_prompt}
    for key, value in pairs.items():
        _normalise(key, value, result)
    # A1111: a missing "Clip skip" means the default, 1 (it is only written when > 1).
    result.params.setdefault("clip_skip", 1)
    return result


def format_lora_hashes(loras: list[dict[str, Any]]) -> str:
    """A1111's "Lora hashes" value: 'name: hash, other: hash', each name as the prompt wrote it
    without ':' and ',' (A1111 drops them so that the value parses back)."""
    return ", ".join(f"{str(e['name']).replace(':', '').replace(',', '')}: {e['hash']}" for e in loras if e.get("hash"))


def parse_lora_hashes(value: str) -> dict[str, str]:
    """{name: short hash} from a "Lora hashes" value; pieces without 'name: hash' are left out."""
    out: dict[str, str] = {}
    for piece in value.split(","):
        name, sep, digest = piece.rpartition(":")
        if sep and name.strip() and digest.strip():
            out[name.strip()] = digest.strip()
    return out


def _normalise(key: str, value: str, result: Infotext) -> None:
    if key == "Lora hashes":  # kept as written, and as {name: hash}
        result.params["lora_hashes"] = parse_lora_hashes(value)
    if key == "TI hashes":  # the same form: {embedding name: hash}
        result.params["ti_hashes"] = parse_lora_hashes(value)
    if key == "Size":
        size = _SIZE.match(value)
        if size:
            result.params["width"] = int(size.group(1))
            result.params["height"] = int(size.group(2))
            return
        result.warnings.append(f"Size: {value!r} is not WIDTHxHEIGHT")
    elif key in _KNOWN:
        name, kind = _KNOWN[key]
        try:
            result.params[name] = kind(value)
            return
        except ValueError:
            result.warnings.append(f"{key}: {value!r} is not a {'whole number' if kind is int else 'number'}")
    result.params[key] = value
