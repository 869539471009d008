"""A1111's prompt styles (styles.csv): read as A1111 reads them, applied into the prompt text.
Torch-free.

    styles = read_styles(settings().styles_file)          # {name: Style}
    prompt, negative = apply_styles("a cat", "", ["Cinematic"], styles)

The file (modules/styles.py in A1111): a CSV with a header row ``name,prompt,negative_prompt``
(``text`` is an older spelling of ``prompt``); rows without a name are left out. A style's prompt
either holds ``{prompt}``, which the user's prompt replaces, or is appended to the prompt after
", " (an empty side is left out); the negative prompt the same. Several styles apply in the order
given, each to the result of the one before.

As A1111 does, the styles go into the prompt text before anything else reads it (LoRA tags,
wildcards, emphasis): the image records the expanded prompt, so its PNG reproduces it without the
styles file, and the names of the styles it used in its JSON (``extra["styles"]``).
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from pathlib import Path

from steady.errors import BadInput

PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str
    negative_prompt: str


def read_styles(path: Path) -> dict[str, Style]:
    """The styles in ``path`` ({} when there is no file); BadInput naming ``styles_file`` when it
    cannot be read as A1111's CSV."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput("styles_file", str(path), f"cannot be read ({exc})") from exc
    try:
        rows = list(csv.DictReader(io.StringIO(text), skipinitialspace=True))
    except csv.Error as exc:
        raise BadInput("styles_file", str(path), f"is not a CSV file ({exc})") from exc
    styles: dict[str, Style] = {}
    for row in rows:
        name = (row.get("name") or "").strip()
        if not name:
            continue
        prompt = row.get("prompt") if row.get("prompt") is not None else row.get("text")
        styles[name] = Style(name, prompt or "", row.get("negative_prompt") or "")
    return styles


def merge(style_text: str, text: str) -> str:
    """A1111's merge_prompts: the placeholder replaced, or both joined with ", "."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, text)
    return ", ".join(part for part in (text.strip(), style_text.strip()) if part)


def apply_styles(prompt: str, negative: str, names: list[str], styles: dict[str, Style],
                 source: Path | None = None) -> tuple[str, str]:  # fmt: skip
    """The prompt and negative prompt with the styles ``names`` applied in order; BadInput naming
    ``style`` and the closest names when one is not in ``styles``."""
    for name in names:
        style = styles.get(name)
        if style is None:
            where = f" in {source}" if source else ""
            if not styles:
                raise BadInput("style", name, f"no styles{where}: the file is missing or has none (A1111's "
                                              "styles.csv: name,prompt,negative_prompt; set styles_file or a1111_dir)")  # fmt: skip
            closest = difflib.get_close_matches(name, list(styles), n=3, cutoff=0.4)
            hint = ("closest: " + ", ".join(closest)) if closest else f"{len(styles)} styles there, none close"
            raise BadInput("style", name, f"no style named {name!r}{where}; {hint}")
        prompt, negative = merge(style.prompt, prompt), merge(style.negative_prompt, negative)
    return prompt, negative


def style_names(value: str) -> list[str]:
    """The style names of a request's ``styles`` field: one per line, blank lines left out."""
    return [line.strip() for line in value.splitlines() if line.strip()]
