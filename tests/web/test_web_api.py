"""The studio's own JSON API against a real uvicorn server and a real worker (embedded model)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from steady.catalog import open_catalog, reconcile
from steady.catalog.gallery import trash_location
from steady.web.security import Guard
from tests.web.conftest import RunningServer, running_server

FAST = {"steps": 4, "cfg_scale": 5.0}


def _generate(server: RunningServer, prompt: str, n: int = 2, **extra) -> dict:
    with server.client() as client:
        reply = client.post("/api/generate", json={"prompt": prompt, "n_images": n, **FAST, **extra})
        assert reply.status_code == 202, reply.text
        return server.wait_job(reply.json()["job_id"])


def test_generate_records_images_and_the_gallery_lists_them_newest_first(server: RunningServer) -> None:
    job = _generate(server, "a red circle", n=3, seed=11)
    assert job["state"] == "done" and len(job["image_ids"]) == 3
    with server.client() as client:
        page = client.get("/api/images", params={"q": "RED CIRCLE", "limit": 2}).json()
        assert page["total"] == 3 and [i["id"] for i in page["items"]] == sorted(job["image_ids"], reverse=True)[:2]
        record = client.get(f"/api/images/{job['image_ids'][0]}").json()
        assert record["params"]["seed"] == 11 and record["params"]["model_name"] == "steady-tiny"
        assert "Seed: 11" in record["infotext"]
        png = client.get(record["file_url"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        thumb = client.get(record["thumb_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert "max-age" in thumb.headers["cache-control"]
        run = client.get(f"/api/runs/{job['run_id']}").json()
        assert [i["index"] for i in run["images"]] == [0, 1, 2]


def test_a_run_without_cfg_uses_the_models_own(server: RunningServer) -> None:
    """The form's CFG left empty (null) is the model's: 5 for the embedded model, recorded as used."""
    with server.client() as client:
        reply = client.post("/api/generate", json={"prompt": "a red circle", "steps": 4, "cfg_scale": None, "seed": 5})
        assert reply.status_code == 202, reply.text
    job = server.wait_job(reply.json()["job_id"])
    with server.client() as client:
        record = client.get(f"/api/images/{job['image_ids'][0]}").json()
    assert record["params"]["cfg_scale"] == 5.0 and "CFG scale: 5," in record["infotext"]


def test_thumbnails_are_made_once_and_cached_on_disk(server: RunningServer) -> None:
    job = _generate(server, "a small blue square", n=1)
    image_id = job["image_ids"][0]
    with server.client() as client:
        assert client.get(f"/api/images/{image_id}/thumb?size=128").status_code == 200
        cached = next((server.home / "cache" / "thumbs").rglob(f"{image_id}-128.jpg"))
        first = cached.stat().st_mtime_ns
        time.sleep(0.05)
        assert client.get(f"/api/images/{image_id}/thumb?size=128").status_code == 200
        assert cached.stat().st_mtime_ns == first  # served from the cache, not remade
        bad = client.get(f"/api/images/{image_id}/thumb?size=7")
        assert bad.status_code == 400 and bad.json()["argument"] == "size"


def test_flags_trash_restore_and_empty(server: RunningServer) -> None:
    job = _generate(server, "a yellow triangle", n=2)
    keep, drop = job["image_ids"]
    with server.client() as client:
        assert client.patch(f"/api/images/{keep}", json={"favourite": True}).json()["favourite"] is True
        favourites = client.get("/api/images", params={"favourite": "true"}).json()
        assert [i["id"] for i in favourites["items"]] == [keep]
        path = Path(client.get(f"/api/images/{drop}").json()["path"])
        assert client.delete(f"/api/images/{drop}").status_code == 200
        assert not path.exists()
        trashed = client.get("/api/images", params={"trash": "true"}).json()
        assert [i["id"] for i in trashed["items"]] == [drop]
        assert drop not in [i["id"] for i in client.get("/api/images", params={"limit": 500}).json()["items"]]
        assert client.get(f"/api/images/{drop}/file").status_code == 200  # still viewable in the trash
        assert client.post(f"/api/images/{drop}/restore").status_code == 200
        assert path.exists()
        client.delete(f"/api/images/{drop}")
        assert client.delete("/api/trash").json()["deleted"] == 1
        assert client.get(f"/api/images/{drop}").status_code == 404
        assert client.get(f"/api/runs/{job['run_id']}").json()["n_done"] == 1


def test_history_shows_word_diffs_between_prompt_versions(server: RunningServer) -> None:
    _generate(server, "a red circle on a blue background", n=1)
    _generate(server, "a large red circle on a green background", n=1)
    with server.client() as client:
        newest = client.get("/api/history", params={"limit": 2}).json()[0]
    ops = [(op["op"], op["text"]) for op in newest["diff"]]
    assert ("add", "large") in ops and ("del", "blue") in ops and ("add", "green") in ops
    assert ("same", "circle") in ops and len(newest["image_ids"]) == 1


def test_progress_events_carry_a_latent_preview(server: RunningServer) -> None:
    events: list[dict] = []

    def listen() -> None:
        with httpx.stream("GET", server.url + "/api/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1].get("type") == "job" and events[-1].get("state") == "done":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    _generate(server, "a purple circle", n=1, steps=40)
    listener.join(60)
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, 41))
    previews = [e["preview"] for e in progress if "preview" in e]
    assert previews and all(p.startswith("data:image/png;base64,") for p in previews)
    assert any(e["type"] == "image" for e in events)


def test_bad_input_is_a_4xx_naming_the_argument_and_nothing_is_queued(server: RunningServer) -> None:
    with server.client() as client:
        before = client.get("/api/history", params={"limit": 100}).json()
        cases = [({"prompt": "x", "steps": 0}, 400, "steps"), ({"prompt": "x", "n_images": 31}, 400, "n_images"),
                 ({"prompt": "x", "width": 100}, 400, "width"), ({"prompt": "x", "sampler": "nope"}, 400, "sampler"),
                 ({"prompt": "x", "model": "no-such-model"}, 400, "model"), ({"prompt": "x", "steps": "many"}, 422, "steps"),
                 ({"prompt": "x", "colour": "red"}, 422, "colour"), ({}, 422, "prompt")]  # fmt: skip
        for body, status, argument in cases:
            reply = client.post("/api/generate", json=body)
            assert reply.status_code == status, (body, reply.text)
            assert reply.json()["argument"] == argument and argument in reply.json()["error"]
        assert client.get("/api/history", params={"limit": 100}).json() == before
        assert client.get("/api/images/999999").status_code == 404
        assert client.get("/api/images", params={"since": "yesterday"}).status_code == 400


def test_no_request_can_reach_a_file_outside_the_catalog(server: RunningServer) -> None:
    secret = server.home.parent / "secret.txt"
    secret.write_text("do not serve")
    probes = ["/static/../../secret.txt", "/static/%2e%2e/%2e%2e/secret.txt", "/static/..%2f..%2fsecret.txt",
              "/api/images/..%2f..%2fsecret.txt/file", f"/static/{secret}", "/static//etc/passwd",
              "/api/images/1%2f..%2f..%2fetc%2fpasswd/file"]  # fmt: skip
    with server.client() as client:
        for path in probes:
            reply = client.get(path)
            assert reply.status_code in (400, 404, 422), (path, reply.status_code)
            assert b"do not serve" not in reply.content and b"root:" not in reply.content


def test_cancelling_a_queued_job_and_interrupting_the_running_one(server: RunningServer) -> None:
    with server.client() as client:
        running = client.post("/api/generate", json={"prompt": "a white square", "n_images": 6, "steps": 30}).json()
        queued = client.post("/api/generate", json={"prompt": "a black square", "n_images": 2, **FAST}).json()
        assert client.post(f"/api/jobs/{queued['job_id']}/cancel").json()["cancelled"] == [queued["job_id"]]
        deadline = time.monotonic() + 60
        while client.get("/api/status").json()["running"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.post("/api/interrupt").json()["cancelled"] == [running["job_id"]]
    assert server.wait_job(running["job_id"])["state"] == "cancelled"
    assert server.wait_job(queued["job_id"])["state"] == "cancelled"
    assert len(server.wait_job(queued["job_id"])["image_ids"]) == 0


def test_guard_refuses_other_hosts_cross_site_requests_and_missing_tokens(tmp_path: Path) -> None:
    guard = Guard(token="s3cret-token", loopback_only=True)
    with running_server(tmp_path / "home", guard, start_studio=False) as srv, srv.client() as client:
        assert client.get("/api/status").status_code == 401
        ok = {"Authorization": "Bearer s3cret-token"}
        assert client.get("/api/status", headers=ok).status_code == 200
        assert client.get("/api/status", auth=("any", "s3cret-token")).status_code == 200
        assert client.get("/api/status", auth=("any", "wrong")).status_code == 401
        rebinding = client.get("/api/status", headers={**ok, "Host": "attacker.example:7860"})
        assert rebinding.status_code == 403 and rebinding.json()["argument"] == "host"
        csrf = client.post("/api/interrupt", headers={**ok, "Origin": "http://attacker.example"})
        assert csrf.status_code == 403 and csrf.json()["argument"] == "origin"
        fetch_meta = client.get("/api/status", headers={**ok, "Sec-Fetch-Site": "cross-site"})
        assert fetch_meta.status_code == 403
        same = client.post("/api/interrupt", headers={**ok, "Origin": srv.url})
        assert same.status_code == 200
        page = client.get("/?token=s3cret-token", follow_redirects=False)
        assert page.status_code == 303 and "steady_token=s3cret-token" in page.headers["set-cookie"]
        assert "httponly" in page.headers["set-cookie"].lower()
        client.cookies.set("steady_token", "s3cret-token")
        assert client.get("/").status_code == 200


def test_trash_moves_cut_short_by_a_crash_are_finished_by_reconcile(tmp_path: Path) -> None:
    home = tmp_path / "home"
    outputs = home / "outputs" / "day"
    outputs.mkdir(parents=True)
    from steady.params import GenerationRequest, ImageParams

    params = ImageParams("p", "", 4, 5.0, 8, 8, 1, "Euler a", 1, "m", "h", "sd1", "cpu", "float32")
    with open_catalog(home / "catalog.db") as catalog:
        run = catalog.start_run(GenerationRequest("p", n_images=2), "m", "h")
        ids = []
        for i in range(2):
            path = outputs / f"{i}.png"
            Image.new("RGB", (8, 8)).save(path)
            ids.append(catalog.add_image(run, path, i, params, 1.0))
        trash = home / "trash"
        # 1. Crash after the row said "in the trash" but before the file moved.
        with catalog.transaction() as conn:
            conn.execute("UPDATE images SET trash_path = ? WHERE id = ?", (str(trash_location(trash, ids[0], "0.png")), ids[0]))
        # 2. Crash after the row said "restored" but before the file moved back.
        trash.mkdir()
        os.replace(outputs / "1.png", trash_location(trash, ids[1], "1.png"))
        report = reconcile(catalog, home / "outputs")
        assert report.trash_moves_finished == 2 and report.rows_removed == 0 and report.images_recorded == 0
        assert trash_location(trash, ids[0], "0.png").exists() and not (outputs / "0.png").exists()
        assert (outputs / "1.png").exists()
        assert catalog.get_image(ids[0]).trash_path and catalog.get_image(ids[1]).trash_path is None


def test_a_run_sorted_by_adherence_and_its_best_of_strip(server: RunningServer) -> None:
    job = _generate(server, "a green triangle", n=4, seed=3)
    with server.client() as client:
        run = client.get(f"/api/runs/{job['run_id']}").json()
        scores = {i["id"]: i["adherence"] for i in run["images"]}
        assert all(isinstance(v, float) for v in scores.values())
        best_first = sorted(scores, key=lambda i: -scores[i])
        assert run["best"] == best_first[:3]
        page = client.get("/api/images", params={"run": job["run_id"], "sort": "adherence"}).json()
        assert [i["id"] for i in page["items"]] == best_first
        bad = client.get("/api/images", params={"sort": "loudest"})
        assert bad.status_code == 400 and bad.json()["argument"] == "sort"
        history = client.get("/api/history", params={"limit": 1}).json()[0]
        assert history["image_ids"] == best_first and 0 < history["variety"] <= 1


def test_an_xy_run_from_the_api_serves_its_labelled_grid(server: RunningServer) -> None:
    job = _generate(server, "a red circle", n=1, seed=5, x_axis="Prompt S/R: red, blue", y_axis="CFG: 3, 7")
    assert job["state"] == "done" and len(job["image_ids"]) == 4  # the grid sets the count, not n_images
    assert job["grid_url"] == f"/api/jobs/{job['job_id']}/grid"
    with server.client() as client:
        grid = client.get(job["grid_url"])
        assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(grid.content)) as image:
            assert image.width >= 2 * 64 and image.height >= 2 * 64 and "steady-grid" in image.text
        plain = _generate(server, "a red circle", n=1, seed=5)
        assert plain["grid_url"] == ""
        assert client.get(f"/api/jobs/{plain['job_id']}/grid").status_code == 404
        assert client.get("/api/jobs/99999/grid").json()["argument"] == "job"
