"""Nothing gets in: bad input of every kind is a 4xx with a JSON message naming the field, bodies
and list responses are bounded, the Host check takes no look-alike, /docs works offline.

The real app over a real catalog and real files (FastAPI's TestClient); the generation thread is
not started, so nothing here needs a worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from steady.params import GenerationRequest
from steady.web.limits import MAX_BODY_BYTES
from steady.web.security import Guard
from steady.web.studio import Studio

HUGE = "99999999999999999999999"  # past 2**63: SQLite cannot take it as an integer


def refused(reply, status: int, argument: str) -> dict:
    """A JSON refusal with this status naming ``argument`` (in the message too)."""
    assert reply.status_code == status, (reply.status_code, reply.text[:300])
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["argument"] == argument, body
    assert argument in body["error"] or str(body.get("value")) in body["error"], body
    assert len(reply.content) < 2000  # a bad value is not echoed back whole
    return body


def test_ids_past_what_sqlite_holds_are_a_422_naming_the_id(client: TestClient) -> None:
    for path, argument in [(f"/api/images/{HUGE}", "image_id"), (f"/api/images/{HUGE}/file", "image_id"),
                           (f"/api/images/{HUGE}/thumb", "image_id"), (f"/api/jobs/{HUGE}", "job_id"),
                           (f"/api/jobs/{HUGE}/grid", "job_id"), (f"/api/runs/{HUGE}", "run_id"),
                           (f"/api/images?run={HUGE}", "run"), (f"/api/images?offset={HUGE}", "offset"),
                           (f"/api/history?offset={HUGE}", "offset"), ("/api/images/-1", "image_id")]:  # fmt: skip
        refused(client.get(path), 422, argument)
    refused(client.post(f"/api/jobs/{HUGE}/cancel"), 422, "job_id")
    refused(client.patch(f"/api/images/{HUGE}", json={"favourite": True}), 422, "image_id")
    refused(client.delete(f"/api/images/{HUGE}"), 422, "image_id")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_cfg_scale_that_is_not_finite_is_refused_by_both_apis(client: TestClient, number: str) -> None:
    headers = {"content-type": "application/json"}
    body = '{"prompt": "a red circle", "cfg_scale": %s}' % number
    refused(client.post("/api/generate", content=body, headers=headers), 422, "cfg_scale")
    refused(client.post("/sdapi/v1/txt2img", content=body, headers=headers), 422, "cfg_scale")
    assert client.get("/api/status").json()["queue"] == []


def test_a_lone_surrogate_in_any_text_is_refused_naming_its_field(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    refused(client.post("/api/generate", content='{"prompt": "a \\ud800 circle"}', headers=headers), 400, "prompt")
    refused(client.post("/sdapi/v1/txt2img", content='{"prompt": "x", "negative_prompt": "\\udfff"}',
                        headers=headers), 422, "negative_prompt")  # fmt: skip
    refused(client.post("/sdapi/v1/options", content='{"sd_vae": "\\ud800"}', headers=headers), 422, "sd_vae")
    refused(client.post("/api/import", content='{"folder": "/tmp/\\ud800"}', headers=headers), 400, "folder")
    assert client.get("/api/status").json()["queue"] == []


def test_a1111_overrides_and_options_take_known_settings_with_values_of_their_type(client: TestClient) -> None:
    bad_override = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "override_settings": {"CLIP_stop_at_last_layers": "abc"}})
    refused(bad_override, 422, "override_settings.CLIP_stop_at_last_layers")
    unknown = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "override_settings": {"eta_noise_seed_delta": 31337}})
    refused(unknown, 422, "override_settings.eta_noise_seed_delta")
    refused(client.post("/sdapi/v1/txt2img", json={"prompt": "x", "override_settings": [1]}), 422, "override_settings")
    junk = client.post("/sdapi/v1/options", json={"junk": "x" * 100_000})
    assert "is not a setting steady knows" in refused(junk, 422, "junk")["error"]
    # All or nothing: a good setting beside a bad one is not applied.
    refused(client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2, "sd_vae": "my.vae"}), 422, "sd_vae")
    refused(client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": True}), 422, "CLIP_stop_at_last_layers")
    refused(client.post("/sdapi/v1/options", json={"sd_model_checkpoint": 5}), 422, "sd_model_checkpoint")
    refused(client.post("/sdapi/v1/options", json=["CLIP_stop_at_last_layers"]), 422, "body")
    options = client.get("/sdapi/v1/options").json()
    assert options["CLIP_stop_at_last_layers"] == 1 and "junk" not in options
    # What GET returns can be posted back as it is.
    assert client.post("/sdapi/v1/options", json={**options, "CLIP_stop_at_last_layers": 2}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2
    assert client.get("/api/status").json()["queue"] == []


def test_png_info_of_a_data_url_without_its_comma_is_refused(client: TestClient) -> None:
    refused(client.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64"}), 422, "image")
    refused(client.post("/sdapi/v1/png-info", json={"image": "not base64 at all"}), 422, "image")


def test_a_body_past_the_limit_is_refused_with_413_before_it_is_read(client: TestClient) -> None:
    prompt = "a " * (MAX_BODY_BYTES // 2 + 10)
    declared = client.post("/api/generate", json={"prompt": prompt, "steps": 2})
    body = refused(declared, 413, "body")
    assert body["value"] > MAX_BODY_BYTES and "1.0 MiB" in body["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"a " * 16_384
        yield b'"}'

    refused(client.post("/api/generate", content=chunks(), headers={"content-type": "application/json"}), 413, "body")
    refused(client.post("/sdapi/v1/options", content=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}",
                        headers={"content-type": "application/json"}), 413, "body")  # fmt: skip
    # png-info takes a whole PNG: 2 MiB of base64 is not refused for its size.
    big_png = client.post("/sdapi/v1/png-info", json={"image": "A" * (2 << 20)})
    assert big_png.status_code == 422 and big_png.json()["argument"] == "image"
    assert client.get("/api/status").json()["queue"] == []


def test_history_is_paged_and_each_page_diffs_against_the_run_before_it(client: TestClient, studio: Studio) -> None:
    prompts = [f"a red circle number{i}" for i in range(7)]
    for prompt in prompts:
        studio.catalog.start_run(GenerationRequest(prompt), "m", "h")
    pages = [client.get("/api/history", params={"limit": 3, "offset": o}).json() for o in (0, 3, 6)]
    assert [[r["prompt"] for r in page] for page in pages] == [prompts[6:3:-1], prompts[3:0:-1], prompts[:1]]
    last_of_first_page = pages[0][-1]  # its diff is against a run on the next page
    assert [(o["op"], o["text"]) for o in last_of_first_page["diff"] if o["op"] != "same"] == [
        ("del", "number3"), ("add", "number4")]
    assert pages[2][0]["diff"] is None  # the oldest run has none before it
    searched = client.get("/api/history", params={"q": "NUMBER1", "limit": 5}).json()
    assert [r["prompt"] for r in searched] == [prompts[1]]
    refused(client.get("/api/history", params={"limit": 101}), 422, "limit")
    refused(client.get("/api/history", params={"limit": 0}), 422, "limit")
    refused(client.get("/api/images", params={"limit": 501}), 422, "limit")


def test_history_of_huge_prompts_answers_in_bounded_time(client: TestClient, studio: Studio) -> None:
    """Word diffs compare the first 500 words: two 10,000-word prompts took 15 s to diff before."""
    import time

    with studio.catalog.transaction() as conn:
        from steady.catalog.db import insert_run

        for word in ("a", "b"):  # stored directly: the parameter table bounds what a request may say
            insert_run(conn, GenerationRequest(f"{word} " + "a " * 10_000), "m", "h", "done")
    started = time.perf_counter()
    rows = client.get("/api/history", params={"limit": 2}).json()
    assert time.perf_counter() - started < 3
    assert rows[0]["diff"][0] == {"op": "add", "text": "b"} and rows[0]["diff"][1] == {"op": "same", "text": "a"}


def test_missing_images_are_404_for_every_verb_and_unknown_routes_are_json(client: TestClient) -> None:
    for reply in (client.patch("/api/images/42", json={"favourite": True}), client.post("/api/images/42/restore"),
                  client.delete("/api/images/42"), client.get("/api/images/42"), client.get("/api/images/42/file")):
        refused(reply, 404, "image")
    refused(client.get("/api/no-such-thing"), 404, "path")
    refused(client.put("/api/generate", json={}), 405, "path")
    refused(client.post("/api/generate", content="[" * 100_000, headers={"content-type": "application/json"}), 400, "body")


def test_host_look_alikes_are_refused_on_loopback(client: TestClient) -> None:
    for host in ("[::1]evil.example", "localhost:80@evil.example", "127.0.0.1.evil.example", "localhost:", "::1",
                 "localhost:7860:80", "evil.example", "127.0.0.1 evil", "[::1]:80x"):  # fmt: skip
        refused(client.get("/api/status", headers={"host": host}), 403, "host")
    for host in ("127.0.0.1", "127.0.0.1:7860", "localhost", "LOCALHOST:7860", "[::1]", "[::1]:7860"):
        assert client.get("/api/status", headers={"host": host}).status_code == 200, host
    assert Guard(loopback_only=False).host_ok("evil.example")  # --listen: the token guards instead


def test_docs_are_served_without_any_network(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "/api/generate" in page.text and "/sdapi/v1/txt2img" in page.text
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    assert client.get("/redoc").status_code == 404
    assert "paths" in client.get("/openapi.json").json()


def test_error_bodies_are_strict_json(client: TestClient) -> None:
    reply = client.post("/api/generate", content='{"prompt": "x", "steps": NaN}', headers={"content-type": "application/json"})
    assert reply.status_code == 422
    json.loads(reply.text, parse_constant=lambda c: pytest.fail(f"{c} in a JSON reply"))


def test_a_200_kb_prompt_is_refused_by_both_apis_naming_the_prompt(client: TestClient) -> None:
    """Under the body limit, over the parameter table's prompt bound (20,000 characters)."""
    prompt = "a " * 100_000
    body = refused(client.post("/api/generate", json={"prompt": prompt, "steps": 2}), 400, "prompt")
    assert "200,000 characters" in body["error"] and len(body["value"]) < 300
    refused(client.post("/sdapi/v1/txt2img", json={"prompt": prompt, "steps": 2}), 422, "prompt")
    refused(client.post("/api/generate", json={"prompt": "x", "negative_prompt": prompt}), 400, "negative_prompt")
    assert client.get("/api/status").json()["queue"] == []


def test_a_runs_images_are_paged_and_its_best_come_whatever_the_page(client: TestClient, studio: Studio) -> None:
    """An imported run can hold thousands of images: /api/runs/{id} answers a page of them."""
    from PIL import Image

    from steady.params import ImageParams

    params = ImageParams("p", "", 4, 5.0, 8, 8, 1, "Euler a", 1, "m", "h", "sd1", "cpu", "float32")
    run = studio.catalog.start_run(GenerationRequest("p", n_images=7), "m", "h")
    folder = studio.cfg.outputs_dir / "day"
    folder.mkdir(parents=True)
    ids = []
    for i in range(7):
        Image.new("RGB", (8, 8)).save(folder / f"{i}.png")
        ids.append(studio.catalog.add_image(run, folder / f"{i}.png", i, params, 1.0))
    with studio.catalog.transaction() as conn:  # the last image scores best
        conn.executemany("UPDATE images SET adherence = ? WHERE id = ?", [(i / 10, image_id) for i, image_id in enumerate(ids)])
    page = client.get(f"/api/runs/{run}", params={"limit": 3, "offset": 2}).json()
    assert [im["index"] for im in page["images"]] == [2, 3, 4] and page["n_done"] == 7
    assert page["best"] == ids[:-4:-1] and [im["id"] for im in page["best_images"]] == ids[:-4:-1]
    assert len(client.get(f"/api/runs/{run}").json()["images"]) == 7  # 100 a page unless asked
    refused(client.get(f"/api/runs/{run}", params={"limit": 501}), 422, "limit")
