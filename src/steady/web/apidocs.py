"""The API's documentation at /docs, as one self-contained HTML page made from the OpenAPI schema.

FastAPI's Swagger and ReDoc pages load their scripts and styles from a CDN; this page has no
script and nothing to fetch, so the studio works (and documents itself) without a network. The
machine-readable schema stays at /openapi.json.
"""

from __future__ import annotations

from html import escape
from typing import Any


def docs_page(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    parts = [f"<h1>{escape(info.get('title', 'API'))} {escape(str(info.get('version', '')))}</h1>",
             "<p>The schema: <a href='/openapi.json'>/openapi.json</a>. Bad input is a 4xx with "
             "<code>{\"error\", \"argument\", \"value\"}</code>.</p>"]  # fmt: skip
    components = schema.get("components", {}).get("schemas", {})
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            parts.append(f"<h2><code>{escape(method.upper())} {escape(path)}</code></h2>")
            text = op.get("description") or op.get("summary") or ""
            if text:
                parts.append(f"<p>{escape(text)}</p>")
            rows = [(p["name"], p.get("in", ""), _type(p.get("schema", {})), p.get("required", False))
                    for p in op.get("parameters", [])]  # fmt: skip
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "").rsplit("/", 1)[-1]
            model = components.get(ref, {})
            required = set(model.get("required", []))
            rows += [(name, "body", _type(field), name in required) for name, field in model.get("properties", {}).items()]
            if rows:
                parts.append("<table><tr><th>name</th><th>in</th><th>type</th><th>required</th></tr>" + "".join(
                    f"<tr><td>{escape(n)}</td><td>{escape(w)}</td><td>{escape(t)}</td><td>{'yes' if r else ''}</td></tr>"
                    for n, w, t, r in rows) + "</table>")  # fmt: skip
    style = ("body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>API</title><style>{style}</style></head>"
            f"<body>{''.join(parts)}</body></html>")  # fmt: skip


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "any"))
