"""Build the CLIP BPE tokenizer files (vocab.json, merges.txt) from OpenAI's BPE merge list.

The files are derived, not hand-typed: they reproduce what Hugging Face ships for
openai/clip-vit-large-patch14 (the tokenizer of SD 1.x, SD 2.x and both SDXL encoders):

    vocab = 256 byte characters (GPT-2 byte-to-unicode table)
          + the same 256 characters followed by '</w>'
          + merges 1..48894 of bpe_simple_vocab_16e6.txt.gz, each pair joined
          + '<|startoftext|>', '<|endoftext|>'          -> 49408 tokens
    merges.txt = '#version: 0.2' + those 48894 merges, one 'a b' pair a line

Run (the .gz is inside the open_clip_torch wheel, folder open_clip/):
    pip download --no-deps -d /tmp/oc open_clip_torch
    unzip -j /tmp/oc/open_clip_torch-*.whl '*bpe_simple_vocab_16e6.txt.gz' -d /tmp/oc
    python tools/make_tokenizer.py /tmp/oc/bpe_simple_vocab_16e6.txt.gz src/steady/models/configs/tokenizer
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # as in CLIP's simple_tokenizer.py: merges[1 : 49152 - 256 - 2 + 1]
EXPECTED_VOCAB = 49408


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table (same order as CLIP's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1 : N_MERGES + 1]
    if len(merges) != N_MERGES or any(len(m.split()) != 2 for m in merges):
        raise SystemExit(f"{bpe_gz}: expected {N_MERGES} merge pairs after the header line")
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    if len(vocab) != EXPECTED_VOCAB or len(set(vocab)) != EXPECTED_VOCAB:
        raise SystemExit(f"built {len(vocab)} tokens ({len(set(vocab))} distinct), expected {EXPECTED_VOCAB}")
    return {tok: i for i, tok in enumerate(vocab)}, merges


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bpe_gz", type=Path, help="path to bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("out_dir", type=Path, nargs="?", default=Path("src/steady/models/configs/tokenizer"))
    args = ap.parse_args()
    encoder, merges = build(args.bpe_gz)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
    (args.out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    print(f"wrote {len(encoder)} tokens and {len(merges)} merges to {args.out_dir}")


if __name__ == "__main__":
    main()
