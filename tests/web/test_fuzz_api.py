"""Property-based fuzzing of our API and the A1111 API, driven by the app's own OpenAPI schema.

Every operation the schema lists (but the endless event stream) is called with path, query and
JSON body values drawn by Hypothesis: well-typed values, values of the wrong type, ids past
2**63, NaN and infinities, lone surrogates, NUL characters, deep and odd JSON, bodies that are
not JSON. The properties:
- never a 5xx;
- every reply that says it is JSON is strict JSON (no NaN), and every 4xx is JSON with an
  `error` message and an `argument` that the message names (or whose value it quotes).

The real app over a real catalog with a few real images (FastAPI's TestClient); the generation
thread is not started, and a canceller cancels what a valid request queues, so a valid
txt2img answers too. Bounded for the test suite (derandomized, FUZZ_EXAMPLES examples, default
150, seconds); a longer run, with new random draws each time:

    STEADY_FUZZ_EXAMPLES=5000 STEADY_FUZZ_RANDOM=1 python -m pytest -q tests/web/test_fuzz_api.py
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from steady.config import Settings
from steady.params import SAMPLERS, GenerationRequest, ImageParams
from steady.web.app import create_app
from steady.web.security import Guard
from steady.web.studio import Studio

FUZZ_EXAMPLES = int(os.environ.get("STEADY_FUZZ_EXAMPLES", "150"))
SKIPPED = {("get", "/api/events")}  # a stream that ends when the client leaves

WEIRD_TEXT = ["", " ", "\ud800", "a\udfffb", "a\x00b", "NaN", "-1", "9" * 40, "../../etc/passwd", "/", "data:",
              "data:image/png;base64", "\u202e\u0000", "🙂" * 3, "x" * 300, "Euler a", "DPM++ 2M Karras", "karras"]
HUGE_INTS = [2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=40), st.sampled_from(WEIRD_TEXT), st.sampled_from(list(SAMPLERS)))


def _junk(depth: int = 2) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**8), 2**8), st.sampled_from(HUGE_INTS),
                       st.floats(allow_nan=True, allow_infinity=True), _text())  # fmt: skip
    if depth == 0:
        return leaves
    inner = _junk(depth - 1)
    return st.one_of(leaves, st.lists(inner, max_size=3), st.dictionaries(_text(), inner, max_size=3))


def _typed(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value of the schema's type (bounds ignored on purpose: just past them is interesting)."""
    kinds = [s.get("type") for s in schema.get("anyOf", [schema])]
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:
        if kind == "integer":
            options.append(st.one_of(st.integers(-3, 200), st.sampled_from([512, 1024, 2048, 64, 8, 30, 31]),
                                     st.sampled_from(HUGE_INTS)))  # fmt: skip
        elif kind == "number":
            options.append(st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 30))
        elif kind == "string":
            options.append(_text())
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "null":
            options.append(st.none())
        elif kind == "array":
            options.append(st.lists(_text(), max_size=3))
        elif kind == "object":
            options.append(st.dictionaries(st.sampled_from(["CLIP_stop_at_last_layers", "sd_vae", "sd_model_checkpoint",
                                                            "samples_format", "junk"]) | _text(), _junk(1), max_size=3))
    return st.one_of(*options) if options else _junk()


def _value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(_typed(schema), _typed(schema), _junk())  # mostly of its type


@st.composite
def _body(draw: st.DrawFn, schema: dict[str, Any], components: dict[str, Any]) -> bytes:
    """A JSON body for ``schema`` (or, sometimes, one that is not JSON or not an object)."""
    shape = draw(st.sampled_from(["object"] * 8 + ["junk", "not json"]))
    if shape == "not json":
        return draw(st.sampled_from([b"", b"{", b"[" * 2000, b"\xff\xfe", b'{"prompt": "x",}', b"null", b"NaN"]))
    if shape == "junk":
        return json.dumps(draw(_junk())).encode()
    model = components.get(schema.get("$ref", "").rsplit("/", 1)[-1], schema)
    properties = model.get("properties", {})
    body: dict[str, Any] = {}
    for name in model.get("required", []):
        if draw(st.integers(0, 9)):  # now and then a required field is missing
            body[name] = draw(_value(properties.get(name, {})))
    for name in draw(st.lists(st.sampled_from(sorted(properties)), max_size=6, unique=True)) if properties else []:
        body[name] = draw(_value(properties[name]))
    if draw(st.integers(0, 9)) == 0:
        body[draw(_text())] = draw(_junk(1))
    return json.dumps(body).encode()  # allow_nan: NaN and Infinity go out as JSON's common extension


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Studio, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("fuzz-home")
    studio = Studio(Settings(home=home))
    params = ImageParams("p", "", 4, 5.0, 8, 8, 1, "Euler a", 1, "m", "h", "sd1", "cpu", "float32")
    for i in range(3):  # a few recorded images, so ids 1-3 reach the file and thumbnail code
        path = studio.cfg.outputs_dir / "day" / f"{i:05d}-00-1.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "blue").save(path)
        studio.catalog.add_image(studio.catalog.start_run(GenerationRequest("p"), "m", "h"), path, 0, params, 1.0)
    stop = threading.Event()

    def cancel_queued() -> None:  # what a valid request queues is cancelled, so txt2img answers
        while not stop.wait(0.05):
            for job in studio.queue.jobs(("queued",)):
                studio.cancel(job.id)

    canceller = threading.Thread(target=cancel_queued, name="fuzz-canceller", daemon=True)
    canceller.start()
    app = create_app(studio, Guard(), start_studio=False)
    cwd = os.getcwd()
    os.chdir(home)  # a relative folder given to /api/import is looked for here, not in the repository
    try:
        with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
            yield client, studio, app.openapi()
    finally:
        os.chdir(cwd)
        stop.set()
        canceller.join(5)
        studio.catalog.close()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()
            if (method, path) not in SKIPPED]  # fmt: skip


@st.composite
def _request(draw: st.DrawFn, schema: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    method, path, op = draw(st.sampled_from(_operations(schema)))
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        value = draw(_value(param.get("schema", {})).filter(lambda v: not isinstance(v, str) or _encodable(v)))
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower() if isinstance(value, bool) else str(value)
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", quote(text, safe=""))
        elif draw(st.booleans()):
            query[param["name"]] = text
    body = None
    if "requestBody" in op:
        body = draw(_body(op["requestBody"]["content"]["application/json"]["schema"],
                          schema.get("components", {}).get("schemas", {})))  # fmt: skip
        if path == "/api/import":  # never a real folder: an import of / would walk the whole disk
            body = body.replace(b'"folder": "', b'"folder": "no-such-folder/')
    return method, path, query, body


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a JSON reply: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def test_fuzzing_both_apis_gives_no_5xx_and_4xx_json_naming_the_field(fuzz_app) -> None:
    client, _, schema = fuzz_app

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              derandomize=not os.environ.get("STEADY_FUZZ_RANDOM"),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(_request(schema))
    def check(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
        method, path, query, body = request
        headers = {"content-type": "application/json"} if body is not None else {}
        reply = client.request(method.upper(), path, params=query, content=body, headers=headers)
        where = f"{method.upper()} {path} {query} {body[:300] if body else b''!r} -> {reply.status_code}"
        assert reply.status_code < 500, f"{where}: {reply.text[:500]}"
        kind = reply.headers.get("content-type", "")
        if kind.startswith("application/json"):
            data = _strict(reply.text)
        else:
            assert reply.status_code < 400, f"{where}: a refusal that is not JSON ({kind}): {reply.text[:200]}"
            return
        if reply.status_code >= 400:
            assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], where
            argument = data.get("argument")
            assert isinstance(argument, str) and argument, f"{where}: {data}"
            named = argument.split(".")[-1] in data["error"] or str(data.get("value")) in data["error"]
            assert named, f"{where}: the message does not name {argument!r}: {data}"

    check()
