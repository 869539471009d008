"""Arbitrary metadata never raises anything but the documented error.

- infotext.parse: A1111's text, any text: never raises (it records warnings);
- foreign.comfyui / foreign.invokeai: any text, any JSON, graph-shaped JSON: never raise;
- read_png_info: a PNG with any text chunks (raw bytes in tEXt, zTXt and iTXt, our own keys
  included): never raises; a file that is not a PNG: BadInput naming `path`, nothing else;
- `steady info` on such a PNG: exit 0 or 2, never a traceback, output that prints.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from steady.errors import BadInput
from steady.images import foreign, infotext
from steady.images.pngmeta import read_png_info
from tests.fixtures.cli import run_main
from tests.fixtures.fuzz import A1111_TEXT, ANY_TEXT, SOME_TEXT, fuzz_settings

KEYS = ("Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Model hash", "Clip skip", "Schedule type",
        "Lora hashes", "Version", "Denoising strength", "Hires upscale")  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), SOME_TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SOME_TEXT, inner, max_size=4),
                    max_leaves=12)  # fmt: skip


@st.composite
def a1111_text(draw) -> str:
    """Infotext-shaped: prompt, an optional negative line, a line of Key: value pairs (some quoted)."""
    prompt = draw(SOME_TEXT)
    negative = draw(st.one_of(st.just(""), SOME_TEXT.map(lambda t: "\nNegative prompt: " + t)))
    pairs = draw(st.lists(st.tuples(st.sampled_from(KEYS) | ANY_TEXT, SOME_TEXT | st.integers().map(str)
                                    | st.floats().map(str) | SOME_TEXT.map(json.dumps)), max_size=6))  # fmt: skip
    line = ", ".join(f"{k}: {v}" for k, v in pairs)
    return f"{prompt}{negative}\n{line}" + draw(st.sampled_from(["", "\n", "\nextra"]))


NODE_TYPES = ("KSampler", "KSamplerAdvanced", "CLIPTextEncode", "EmptyLatentImage", "CheckpointLoaderSimple",
              "CLIPSetLastLayer", "LoraLoader", "PrimitiveNode", "Reroute", "SDXLPromptEncoder", "Junk")  # fmt: skip
INPUTS = ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "positive", "negative",
          "latent_image", "samples", "model", "clip", "text", "text_g", "width", "height", "ckpt_name",
          "stop_at_clip_layer", "lora_name", "strength_model", "value", "conditioning_to")  # fmt: skip
NODE_IDS = st.sampled_from(["1", "2", "3", "4", "5", "10"])
LINK = st.tuples(NODE_IDS, st.integers(-1, 3)).map(list)
VALUE = st.one_of(SCALARS, LINK, JSON)


@st.composite
def comfy_graph(draw) -> dict:
    nodes = draw(st.dictionaries(NODE_IDS, st.fixed_dictionaries(
        {"class_type": st.sampled_from(NODE_TYPES), "inputs": st.dictionaries(st.sampled_from(INPUTS), VALUE, max_size=6)}),
        max_size=6))  # fmt: skip
    return nodes


@st.composite
def comfy_workflow(draw) -> dict:
    node = st.fixed_dictionaries({
        "id": st.integers(0, 6) | SCALARS, "type": st.sampled_from(NODE_TYPES),
        "inputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(INPUTS), "link": st.integers(0, 8) | SCALARS}),
                           max_size=4),
        "widgets_values": st.lists(SCALARS, max_size=8) | JSON,
    })  # fmt: skip
    link = st.lists(st.integers(0, 8) | SCALARS, min_size=0, max_size=6) | st.dictionaries(
        st.sampled_from(["id", "origin_id", "origin_slot", "target_id"]), st.integers(0, 8) | SCALARS)
    return {"nodes": draw(st.lists(node, max_size=6) | JSON), "links": draw(st.lists(link, max_size=6) | JSON)}


INVOKE_KEYS = ("positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "scheduler", "width", "height",
               "model", "clip_skip", "image", "prompt", "sampler", "model_weights", "model_hash", "generation_mode")


@st.composite
def invoke_metadata(draw) -> dict:
    image = st.dictionaries(st.sampled_from(["prompt", "seed", "steps", "cfg_scale", "sampler", "width", "height"]),
                            VALUE | st.lists(st.fixed_dictionaries({"prompt": SOME_TEXT, "weight": SCALARS})))
    return draw(st.dictionaries(st.sampled_from(INVOKE_KEYS), VALUE | image, max_size=8))


def _dumps(value) -> str:
    return json.dumps(value, allow_nan=True)


@fuzz_settings(300)
@given(st.one_of(a1111_text(), SOME_TEXT))
def test_infotext_parse_never_raises(text):
    result = infotext.parse(text)
    json.dumps(result.params, default=str)  # what `steady info --json` prints


@fuzz_settings(300)
@given(st.one_of(st.none(), SOME_TEXT, JSON.map(_dumps), comfy_graph().map(_dumps)),
       st.one_of(st.none(), SOME_TEXT, JSON.map(_dumps), comfy_workflow().map(_dumps)))
def test_comfyui_never_raises(prompt, workflow):
    found = foreign.comfyui(prompt, workflow)
    assert all(isinstance(w, str) for w in found.warnings)


@fuzz_settings(300)
@given(st.one_of(st.none(), SOME_TEXT, JSON.map(_dumps), invoke_metadata().map(_dumps)),
       st.one_of(st.none(), SOME_TEXT, JSON.map(_dumps), invoke_metadata().map(_dumps)))
def test_invokeai_never_raises(metadata, legacy):
    found = foreign.invokeai(metadata, legacy)
    assert all(isinstance(w, str) for w in found.warnings)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(chunks: list[tuple[bytes, bytes]], before_pixels: bool) -> bytes:
    """A 2x2 PNG with these chunks (type, data) before or after its image data."""
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    raw = buf.getvalue()
    head, rest = raw[:33], raw[33:]  # signature + IHDR
    extra = b"".join(_chunk(kind, data) for kind, data in chunks)
    return head + extra + rest if before_pixels else raw[:-12] + extra + raw[-12:]


CHUNK_KEYS = st.sampled_from([b"steady", b"parameters", b"prompt", b"workflow", b"invokeai_metadata", b"sd-metadata",
                              b"Comment"]) | st.binary(max_size=12)  # fmt: skip
TEXT_VALUE = st.one_of(st.binary(max_size=80), a1111_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
                       JSON.map(_dumps).map(lambda t: t.encode("utf-8", "surrogatepass")),
                       comfy_graph().map(_dumps).map(str.encode))  # fmt: skip


@st.composite
def text_chunk(draw) -> tuple[bytes, bytes]:
    key, value = draw(CHUNK_KEYS), draw(TEXT_VALUE)
    kind = draw(st.sampled_from([b"tEXt", b"zTXt", b"iTXt"]))
    if kind == b"tEXt":
        return kind, key + b"\0" + value
    if kind == b"zTXt":
        return kind, key + b"\0\0" + draw(st.sampled_from([zlib.compress(value), value]))
    compressed = draw(st.booleans())
    body = zlib.compress(value) if compressed else value
    return kind, key + b"\0" + bytes([compressed, 0]) + draw(st.binary(max_size=3)) + b"\0" + b"\0" + body


@fuzz_settings(200)
@given(st.lists(text_chunk(), max_size=4), st.booleans())
def test_any_text_chunks_read_without_raising(tmp_path_factory, chunks, before_pixels):
    path = tmp_path_factory.mktemp("png") / "fuzz.png"
    path.write_bytes(_png(chunks, before_pixels))
    info = read_png_info(path)
    assert info.source in ("steady", "a1111", "comfyui", "invokeai", "none")
    json.dumps({"params": info.params, "warnings": info.warnings}, default=str)


@fuzz_settings(200)
@given(st.binary(max_size=200))
def test_bytes_that_are_not_a_png_are_bad_input_naming_path(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("png") / "fuzz.png"
    path.write_bytes(data)
    try:
        read_png_info(path)
    except BadInput as exc:
        assert exc.argument == "path" and "\n" not in str(exc)


@fuzz_settings(60)
@given(st.lists(text_chunk(), max_size=3), st.booleans())
def test_steady_info_prints_any_png_without_a_traceback(tmp_path_factory, capsys, chunks, as_json):
    path = tmp_path_factory.mktemp("png") / "fuzz.png"
    path.write_bytes(_png(chunks, True))
    code, out = run_main(["info", str(path), *(["--json"] if as_json else [])], capsys)
    assert code == 0, out.err
    assert "Traceback" not in out.err
    (out.out + out.err).encode("utf-8", "backslashreplace")
