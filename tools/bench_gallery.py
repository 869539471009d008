"""The gallery at scale: server time of every filter and search, and the page in Chromium.

    python tools/bench_gallery.py queries CATALOG_DB [CATALOG_DB ...]   # e.g. 10,000 and 100,000 images
    python tools/bench_gallery.py browser STEADY_HOME                   # steady serve over that home

`queries` copies each catalog, marks 5 % of its images favourite, 1 % rejected and 1 % trashed
(the copy only), then times what GET /api/images does (steady.catalog.gallery.gallery_page) for
each filter in a fresh PageCache, as the page asks: the first window (which counts the filter),
the next 20 windows in order (scrolling), and 5 jumps to windows never reached; 3 sessions each.
It prints one JSON line per catalog: per filter, the median of all its pages, of its first pages
and of its jumps, in ms.

`browser` runs `steady serve` over STEADY_HOME (a catalog whose thumbnails were made ahead:
steady.catalog.ahead) and drives Debian's Chromium at 1280x800 through Playwright as the browser
test does at 10,000: the first screen, a scroll from top to bottom, 1,000 steps of the viewer;
DOM elements, JS heap and the server's RSS at each stage; then, in a fresh browser context (no
cache), 20 scroll steps of one screen each into rows never shown, each timed from the scroll to
every visible cell's thumbnail decoded. Prints one JSON line.

Both load the machine: run them with nice, and say which machine and load the figures came from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from steady.catalog import open_catalog
from steady.catalog.gallery import GalleryFilter, gallery_page
from steady.catalog.pages import WINDOW, PageCache

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip


def filters(group_id: int | None) -> dict[str, GalleryFilter]:
    return {
        "all": GalleryFilter(),
        "search word (most rows)": GalleryFilter(text="lighthouse"),
        'search phrase ("style 7", 1 in 75)': GalleryFilter(text='"style 7"'),
        "search prefix (cli*)": GalleryFilter(text="cli*"),
        "search excluding (-blurry)": GalleryFilter(text="-blurry"),
        "negative prompt (neg:blurry)": GalleryFilter(text="neg:blurry"),
        "search model (model:sd15)": GalleryFilter(text="model:sd15"),
        "model (exact)": GalleryFilter(model="sd15"),
        "date range": GalleryFilter(since="2000-01-01", until="2100-01-01"),
        "favourites (5 %)": GalleryFilter(favourite=True),
        "hide rejected": GalleryFilter(hide_rejected=True),
        "trash (1 %)": GalleryFilter(trash=True),
        "import group": GalleryFilter(import_id=group_id),
        "generated here (none)": GalleryFilter(here=True),
        "best adherence first": GalleryFilter(sort="adherence"),
        "favourites + search": GalleryFilter(favourite=True, text="lighthouse"),
    }


def time_queries(db: Path, sessions: int = 3) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-gallery-") as temp:
        copy = Path(temp) / "catalog.db"
        with open_catalog(db) as source, source.reading() as conn:
            conn.execute("VACUUM INTO ?", (str(copy),))
        with open_catalog(copy) as catalog:
            with catalog.transaction() as conn:
                conn.execute("UPDATE images SET favourite = 1 WHERE id % 20 = 0")
                conn.execute("UPDATE images SET rejected = 1 WHERE id % 100 = 1")
                conn.execute("UPDATE images SET trash_path = path || '.trashed', trashed_at = created_at WHERE id % 100 = 2")
                n = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
                group = conn.execute("SELECT id FROM imports ORDER BY id LIMIT 1").fetchone()
            out: dict[str, object] = {"catalog": str(db), "images": n}
            for name, flt in filters(group[0] if group else None).items():
                firsts, pages, jumps = [], [], []
                total = 0
                for session in range(sessions):
                    cache = PageCache()
                    for w in range(21):
                        t0 = time.perf_counter()
                        page = gallery_page(catalog, flt, offset=w * WINDOW, limit=WINDOW, cache=cache)
                        ms = (time.perf_counter() - t0) * 1000
                        (firsts if w == 0 else pages).append(ms)
                        total = page.total
                    windows = max(1, -(-total // WINDOW))
                    for k in range(5):  # regions never reached, spread over the rest of the filter
                        w = 21 + (k + 1) * max(0, windows - 22) // 6 + session
                        t0 = time.perf_counter()
                        gallery_page(catalog, flt, offset=w * WINDOW, limit=WINDOW, cache=cache)
                        jumps.append((time.perf_counter() - t0) * 1000)
                every = firsts + pages + jumps
                out[name] = {"total": total, "median_ms": round(statistics.median(every), 2),
                             "first_page_ms": round(statistics.median(firsts), 2),
                             "next_page_ms": round(statistics.median(pages), 2),
                             "jump_ms": round(statistics.median(jumps), 2), "max_ms": round(max(every), 1)}  # fmt: skip
            return out


def heap_and_elements(page, cdp) -> tuple[int, int]:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return int(metrics["JSHeapUsedSize"]), page.evaluate("document.getElementsByTagName('*').length")


def browse(home: Path, steps: int = 1000) -> dict[str, object]:
    import httpx
    import psutil
    from playwright.sync_api import sync_playwright

    port = 7800 + os.getpid() % 100
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "steady", "serve", "--port", str(port)],
                              env={**os.environ, "STEADY_HOME": str(home)}, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/api/status", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        rss = lambda: psutil.Process(server.pid).memory_info().rss  # noqa: E731
        visible_done = ("[...document.querySelectorAll('#grid img')].filter(i => { const r = i.getBoundingClientRect();"
                        " return r.bottom > 0 && r.top < innerHeight; }).every(i => i.complete && i.naturalWidth)")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(url + "/#gallery")
            page.wait_for_function("document.querySelectorAll('#grid .cell').length > 20", timeout=120_000)
            page.wait_for_function(visible_done, timeout=120_000)
            count = page.inner_text("#g-count")
            heap0, elements0 = heap_and_elements(page, cdp)
            rss0 = rss()
            # 1. Top to bottom.
            height = page.evaluate("document.querySelector('#grid-space').scrollHeight")
            most = elements0
            for top in range(0, height + 800, max(800, height // 400)):
                page.evaluate(f"document.querySelector('#grid-scroll').scrollTop = {top}")
                page.wait_for_timeout(10)
                most = max(most, page.evaluate("document.getElementsByTagName('*').length"))
            page.wait_for_function("[...document.querySelectorAll('#grid .cell')].every(c => c.dataset.id)", timeout=60_000)
            last = page.evaluate("Math.max(...[...document.querySelectorAll('#grid .cell')].map(c => +c.dataset.index))")
            heap_scrolled, _ = heap_and_elements(page, cdp)
            # 2. 1,000 steps of the viewer.
            page.evaluate("document.querySelector('#grid-scroll').scrollTop = 0")
            page.wait_for_timeout(200)
            page.click("#grid .cell >> nth=0")
            page.wait_for_selector("#detail:not([hidden])")
            for _ in range(steps):
                page.keyboard.press("ArrowRight")
            page.wait_for_function(f"document.querySelector('#d-pos').textContent.startsWith('{steps + 1:,} /')", timeout=120_000)
            page.wait_for_function("document.querySelector('#d-img').complete", timeout=60_000)
            page.keyboard.press("Escape")
            heap1, elements1 = heap_and_elements(page, cdp)
            rss1 = rss()
            # 3. Scroll steps to rows never shown, in a fresh browser (nothing cached): open at the
            #    middle, then 20 steps of one screen down, each from the scroll to every visible
            #    thumbnail decoded.
            fresh = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            fresh.goto(url + "/#gallery?pos=50001")
            fresh.wait_for_function("document.querySelectorAll('#grid .cell').length > 20", timeout=120_000)
            fresh.wait_for_function(visible_done, timeout=120_000)
            fresh.wait_for_timeout(500)
            jumps = []
            for _ in range(20):
                fresh.evaluate("document.querySelector('#grid-scroll').scrollTop += document.querySelector('#grid-scroll').clientHeight")
                t0 = time.perf_counter()
                fresh.wait_for_function(visible_done, polling="raf", timeout=30_000)
                jumps.append(round((time.perf_counter() - t0) * 1000))
                fresh.wait_for_timeout(300)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    return {"count": count, "elements_first": elements0, "elements_max": max(most, elements1), "last_index": last,
            "heap_first_mib": round(heap0 / 2**20, 2), "heap_scrolled_mib": round(heap_scrolled / 2**20, 2),
            "heap_after_steps_mib": round(heap1 / 2**20, 2), "heap_ratio": round(heap1 / heap0, 3),
            "server_rss_first_mib": round(rss0 / 2**20, 1), "server_rss_after_mib": round(rss1 / 2**20, 1),
            "server_rss_ratio": round(rss1 / rss0, 3), "jump_to_thumbnails_ms": jumps,
            "jump_median_ms": statistics.median(jumps), "jump_max_ms": max(jumps)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("queries")
    q.add_argument("catalogs", nargs="+", type=Path)
    b = sub.add_parser("browser")
    b.add_argument("home", type=Path)
    args = ap.parse_args()
    if args.what == "queries":
        for db in args.catalogs:
            print(json.dumps({**time_queries(db), "load_average": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    else:
        print(json.dumps({**browse(args.home), "load_average": [round(x, 2) for x in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
