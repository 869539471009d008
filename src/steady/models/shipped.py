"""The component configs shipped with steady (no weights), and config folders built from them.

configs/<variant>/ is a diffusers pipeline folder without weights for each supported family:
    sd1   SD 1.5                 sd2   SD 2.1 512 base (epsilon)
    sd2v  SD 2.1 768 (v_prediction)   sdxl  SDXL base 1.0
configs/tokenizer/ holds the one CLIP BPE vocabulary (vocab.json, merges.txt; built by
tools/make_tokenizer.py). Each variant's tokenizer*/ folders hold only tokenizer_config.json and
special_tokens_map.json (SD1 pads with <|endoftext|>, SD2 and SDXL's tokenizer_2 with "!");
`materialize` links or copies the vocabulary in, so it is shipped once, not five times.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

VARIANTS = ("sd1", "sd2", "sd2v", "sdxl")
TOKENIZER_FILES = ("vocab.json", "merges.txt")


def config_root() -> Path:
    return Path(__file__).with_name("configs")


def tokenizer_dir() -> Path:
    """A complete CLIP tokenizer folder (SD1 padding); transformers can load it as is."""
    return config_root() / "tokenizer"


def variant_dir(variant: str) -> Path:
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; expected one of {VARIANTS}")
    return config_root() / variant


def variant_for(arch: str, prediction_type: str | None) -> str:
    return "sd2v" if arch == "sd2" and prediction_type == "v_prediction" else arch


def load_component_config(variant: str, component: str) -> dict[str, Any]:
    d = variant_dir(variant) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((d / name).read_text(encoding="utf-8"))


def _variant_digest(variant: str, overrides: dict[str, dict[str, Any]]) -> str:
    h = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode())
    for p in sorted(variant_dir(variant).rglob("*.json")):
        h.update(p.relative_to(config_root()).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _write_folder(variant: str, overrides: dict[str, dict[str, Any]], dest: Path) -> None:
    src = variant_dir(variant)
    shutil.copytree(src, dest)
    for component, values in overrides.items():
        cfile = dest / component / ("scheduler_config.json" if component == "scheduler" else "config.json")
        if not cfile.exists():
            raise ValueError(f"overrides name component {component!r}, which {variant} does not have")
        cfg = json.loads(cfile.read_text(encoding="utf-8"))
        cfg.update(values)
        cfile.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    for tok in sorted(dest.glob("tokenizer*")):
        for name in TOKENIZER_FILES:
            target = tok / name
            try:
                os.link(tokenizer_dir() / name, target)
            except OSError:  # other file system, or links not allowed
                shutil.copyfile(tokenizer_dir() / name, target)


def materialize(variant: str, overrides: dict[str, dict[str, Any]], cache_dir: Path) -> Path:
    """A diffusers-layout config folder = shipped `variant` + `overrides` ({component: {key:
    value}}), written once under cache_dir/configs/<variant>-<digest>/ and reused after."""
    dest = cache_dir / "configs" / f"{variant}-{_variant_digest(variant, overrides)}"
    if (dest / "model_index.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{variant}-", dir=dest.parent))
    try:
        _write_folder(variant, overrides, tmp / "c")
        try:
            os.rename(tmp / "c", dest)
        except OSError:
            if not (dest / "model_index.json").is_file():  # lost a race to an identical writer: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
