"""Teach the embedded model what it has never seen, on this CPU, and save it as users' files are.

    python -m steady.tiny.teach lora --out build/tiny-star.safetensors        # a LoRA for the star (steady.tiny.adapt)
    python -m steady.tiny.teach lora --out /tmp/s.safetensors --quick         # a smoke run (seconds)
    python -m steady.tiny.teach lcm --out build/tiny-lcm.safetensors          # the LCM-LoRA (steady.tiny.lcm)
    python -m steady.tiny.teach embedding --out build/aqua.safetensors        # the embedding (steady.tiny.embedding)

Every field of each trainer's config is also a flag (``--steps 300``, ``--lr 2e-3``, ...).
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from steady.tiny import embedding as E
from steady.tiny import lcm as L
from steady.tiny.adapt import QUICK, TeachConfig, train_lora


# ---------------------------------------------------------------------------------------------
# command line
def _flags(parser: argparse.ArgumentParser, config: type) -> None:
    for f in fields(config):
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(f.default, bool) else type(f.default)
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None)


def _config(config: Any, args: argparse.Namespace, quick: dict[str, Any]) -> Any:
    c = replace(config, **quick) if args.quick else config
    given = {f.name: getattr(args, f.name) for f in fields(c) if getattr(args, f.name) is not None}
    return replace(c, **given)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steady.tiny.teach", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lora = sub.add_parser("lora", help="a LoRA that teaches the star (kohya layout)")
    lora.add_argument("--out", required=True, type=Path, help="the .safetensors file to write")
    lora.add_argument("--name", default="tiny-star", help="the name recorded in the file (ss_output_name)")
    lora.add_argument("--quick", action="store_true", help="a smoke run (seconds), not a usable LoRA")
    _flags(lora, TeachConfig)
    few = sub.add_parser("lcm", help="an LCM-LoRA distilled from the embedded model (4 steps, LCM sampler)")
    few.add_argument("--out", required=True, type=Path, help="the .safetensors file to write")
    few.add_argument("--name", default="tiny-lcm", help="the name recorded in the file (ss_output_name)")
    few.add_argument("--quick", action="store_true", help="a smoke run (seconds), not a usable LoRA")
    _flags(few, L.LcmConfig)
    emb = sub.add_parser("embedding", help="a textual-inversion embedding for the word aqua (A1111 format)")
    emb.add_argument("--out", required=True, type=Path, help="the .safetensors file to write (its name is the word)")
    emb.add_argument("--quick", action="store_true", help="a smoke run (seconds), not a usable embedding")
    _flags(emb, E.EmbeddingConfig)
    args = parser.parse_args(argv)
    if args.what == "embedding":
        E.train_embedding(_config(E.EmbeddingConfig(), args, E.QUICK), args.out, args.out.stem)
    if args.what == "lora":
        train_lora(_config(TeachConfig(), args, QUICK), args.out, args.name)
    elif args.what == "lcm":
        L.train_lcm(_config(L.LcmConfig(), args, L.QUICK), args.out, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
