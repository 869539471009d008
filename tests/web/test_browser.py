"""The page in a real browser: Debian's Chromium, headless, driven by Playwright.

The server is `steady serve` in its own process (its memory is measured from outside). The
gallery test builds a catalog of 10,000 small PNGs at test time, imports it, scrolls the grid
from top to bottom and steps through 1,000 images in the detail view with the arrow key, and
checks that the DOM stays small, the JS heap stays flat and the server's memory stays bounded.

Run only these: python -m pytest -m browser;  skip them: -m "not browser" (CI runs them).
Screenshots go to STEADY_SCREENSHOT_DIR when set (docs/screenshots for the docs), else a temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from steady.catalog import open_catalog
from steady.catalog.ahead import make_thumbs_ahead
from steady.catalog.importer import import_folder
from tests.web.conftest import free_port

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220), "yellow": (240, 220, 40),
           "purple": (150, 60, 200), "orange": (245, 140, 30), "white": (245, 245, 245), "black": (15, 15, 15)}
N_GALLERY = 10_000
N_STEPS = 1_000


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STEADY_SCREENSHOT_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ServeProcess:
    def __init__(self, home: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "STEADY_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "steady", "serve", "--port", str(self.port)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/status", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode())
        raise RuntimeError("steady serve did not start")

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        yield instance
        instance.close()



def open_form(browser: object, server: ServeProcess, **fields: object) -> object:
    """A new page on the studio with the generate form's fields (by id) filled in."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(server.url + "/")
    for name, value in fields.items():
        page.fill(f"#{name}", str(value))
    return page

def make_pngs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    from PIL import ImageDraw

    names = list(COLOURS)
    for i in range(n):
        colour = names[i % len(names)]
        meta = PngInfo()
        meta.add_text("parameters", f"a {colour} circle number {i}\nSteps: 20, Sampler: Euler a, CFG scale: 5, "
                                    f"Seed: {i}, Size: 64x64, Model: imported-model")  # fmt: skip
        shade = (i * 37) % 160
        image = Image.new("RGB", (64, 64), (shade, 160 - shade, 96))
        x, y, r = 8 + (i * 7) % 36, 8 + (i * 13) % 36, 6 + i % 10
        ImageDraw.Draw(image).ellipse((x, y, x + 2 * r, y + 2 * r), fill=COLOURS[colour])
        image.save(folder / f"{i:05d}.png", pnginfo=meta, compress_level=1)


def heap_and_nodes(cdp: object) -> tuple[int, int]:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return int(metrics["JSHeapUsedSize"]), int(metrics["Nodes"])


def test_generate_from_the_page_and_see_the_images_appear(browser, tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "home")
    try:
        page = open_form(browser, server, prompt="a small red circle at the top left on a blue background", n_images=3,
                         steps=8, seed=42)  # fmt: skip
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#run-strip img').length === 3", timeout=120_000)
        page.wait_for_function("[...document.querySelectorAll('#run-strip img')].every(i => i.complete && i.naturalWidth > 0)")
        assert "done" in page.inner_text("#progress-text")
        # The iterate panel shows the run; a second, edited prompt shows its word diff.
        page.fill("#prompt", "a large red circle at the top left on a green background")
        page.fill("#n_images", "2")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#history li').length === 2", timeout=120_000)
        page.wait_for_function("document.querySelectorAll('#history li:first-child img').length === 2", timeout=60_000)
        added = page.eval_on_selector_all("#history li:first-child .words .add", "els => els.map(e => e.textContent)")
        removed = page.eval_on_selector_all("#history li:first-child .words .del", "els => els.map(e => e.textContent)")
        assert added == ["large", "green"] and removed == ["small", "blue"]
        page.screenshot(path=str(shots_dir(tmp_path) / "generate.png"))
        # "Reuse these settings" on the first run in the history puts its prompt and settings back in the form.
        reuse = page.locator("#history li:last-child button")
        assert reuse.inner_text() == "reuse these settings"
        page.fill("#steps", "30")
        reuse.click()
        page.wait_for_function("document.querySelector('#prompt').value.startsWith('a small red circle')")
        assert page.input_value("#steps") == "8" and page.input_value("#seed") in ("42", "43", "44")
        # Bad input is shown, not queued.
        page.fill("#steps", "0")
        page.click("#generate")
        page.wait_for_function("document.querySelector('#gen-error').textContent.includes('steps')")
        page.fill("#steps", "8")
        # "Reuse these settings" from an image puts its seed back in the form.
        page.click("#run-strip img >> nth=1")
        page.wait_for_selector("#detail:not([hidden])")
        page.wait_for_function("document.querySelector('#d-params').textContent.includes('Seed: 43')")
        assert "CFG scale: 5," in page.inner_text("#d-params")  # the form's CFG left empty: the embedded model's
        page.keyboard.press("r")
        assert page.input_value("#seed") == "43" and page.input_value("#prompt").startswith("a large red circle")
        # An X/Y grid from the page: two seeds side by side, the labelled grid shown when the run ends.
        page.keyboard.press("Escape")
        page.wait_for_selector("#detail", state="hidden")
        page.click("#xy-panel summary")
        page.fill("#x_axis", "Seed: 1, 2")
        page.click("#generate")
        page.wait_for_selector("#xy-result:not([hidden])", timeout=120_000)
        page.wait_for_function("document.querySelector('#xy-image').complete && document.querySelector('#xy-image').naturalWidth >= 128")
        assert page.eval_on_selector_all("#run-strip img", "els => els.length") == 2
        page.screenshot(path=str(shots_dir(tmp_path) / "xy-grid.png"))
        page.close()
    finally:
        server.stop()



def test_until_saturated_from_the_page_says_the_prompt_stopped(browser, tmp_path: Path) -> None:
    """A fully specified prompt soon stops producing new patterns: the run stops before its cap,
    the page says so and tells the user to change the prompt, and the prompt history keeps the reason
    after a reload."""
    server = ServeProcess(tmp_path / "home")
    try:
        page = open_form(browser, server, prompt="a small red circle at the top left on a blue background", n_images=20,
                         seed=0)  # fmt: skip
        page.check("#until_saturated")
        page.click("#generate")
        page.wait_for_function("document.querySelector('#progress-text').textContent.startsWith('done')", timeout=180_000)
        notice = page.inner_text("#notice")
        assert "stopped producing new patterns" in notice and "change the prompt" in notice
        made = page.eval_on_selector_all("#run-strip img", "els => els.length")
        assert 3 <= made < 20 and f"saturated after {made} images" in notice
        # The best-of-run strip: three images, best first, each with its rank, seed and score on hover.
        page.wait_for_selector("#best:not([hidden])")
        titles = page.eval_on_selector_all("#best-strip img", "els => els.map(e => e.title)")
        assert [t.split(" ·")[0] for t in titles] == [f"#1 of {made}", f"#2 of {made}", f"#3 of {made}"]
        scores = [float(t.split("adherence ")[1]) for t in titles]
        assert scores == sorted(scores, reverse=True)
        page.wait_for_function("document.querySelectorAll('#history li').length === 1")
        page.reload()
        page.wait_for_function("document.querySelectorAll('#history li .saturated').length === 1")
        assert f"saturated after {made} images" in page.inner_text("#history li .saturated")
        assert f"{made}/20" in page.inner_text("#history li .meta")
        page.close()
    finally:
        server.stop()

def test_gallery_of_ten_thousand_images_stays_in_bounded_memory(browser, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_pngs(tmp_path / "pngs", N_GALLERY)
    with open_catalog(home / "catalog.db") as catalog:
        assert import_folder(catalog, tmp_path / "pngs").added == N_GALLERY
        # The first screen's thumbnails made ahead (an import's background pass, cut short here).
        assert make_thumbs_ahead(catalog, home / "cache" / "thumbs", limit=60) == 60
    server = ServeProcess(home)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(server.url + "/")
        page.keyboard.press("Alt+2")
        page.wait_for_function(f"document.querySelector('#g-count').textContent.startsWith('{N_GALLERY:,}')")
        page.wait_for_function("[...document.querySelectorAll('#grid img')].filter(i => i.complete && i.naturalWidth).length >= 20")
        # Every control of the filter bar is on screen, above the grid, on one line at 1280 px.
        bar_bottom = page.locator("#grid-scroll").bounding_box()["y"]
        for control in ("#import", "#f-sort", "#f-text", "#f-group", "#g-count"):
            box = page.locator(control).bounding_box()
            assert box and box["y"] + box["height"] <= bar_bottom and box["x"] + box["width"] <= 1280, control
        assert page.locator("#filters").bounding_box()["height"] < 50
        import_box = page.locator("#import").bounding_box()
        # Cells made ahead were painted in their image's dominant colour before their thumbnail came.
        painted = page.eval_on_selector_all("#grid img", "els => els.filter(i => i.style.backgroundColor).length")
        assert painted >= 40, painted
        assert page.request.get(server.url + "/favicon.ico").headers["content-type"] == "image/x-icon"
        page.wait_for_function("[...document.querySelectorAll('#grid img')].filter(i => "
                               "i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth)")
        page.screenshot(path=str(shots_dir(tmp_path) / "gallery.png"))
        heap0, nodes0 = heap_and_nodes(cdp)
        elements0 = page.evaluate("document.getElementsByTagName('*').length")
        rss0 = server.rss()
        # 1. Scroll from top to bottom.
        height = page.evaluate("document.querySelector('#grid-space').scrollHeight")
        max_elements, cells = elements0, []
        for top in range(0, height + 800, max(800, height // 60)):
            page.evaluate(f"document.querySelector('#grid-scroll').scrollTop = {top}")
            page.wait_for_timeout(30)
            cells.append(page.evaluate("document.querySelectorAll('#grid .cell').length"))
            max_elements = max(max_elements, page.evaluate("document.getElementsByTagName('*').length"))
        page.wait_for_function("[...document.querySelectorAll('#grid .cell')].every(c => c.dataset.id)")
        heap_scrolled, _ = heap_and_nodes(cdp)
        last_index = page.evaluate("Math.max(...[...document.querySelectorAll('#grid .cell')].map(c => +c.dataset.index))")
        assert last_index == N_GALLERY - 1  # the bottom is reachable: the oldest image
        # Only the visible rows (+ a margin of 4 above and below) exist: 7 columns x (5 + 8) rows at most.
        assert max(cells) <= 7 * 13 + 7 and max_elements <= elements0 + 2 * 7 * 8 and max_elements <= 600
        # 2. Step through 1,000 images with the arrow key in the detail view.
        page.evaluate("document.querySelector('#grid-scroll').scrollTop = 0")
        page.wait_for_timeout(100)
        page.click("#grid .cell >> nth=0")
        page.wait_for_function("document.querySelector('#d-params').textContent.includes('number 9999')")
        page.screenshot(path=str(shots_dir(tmp_path) / "detail.png"))
        heaps = []
        for i in range(N_STEPS):
            page.keyboard.press("ArrowRight")
            if i % 250 == 249:
                page.wait_for_function("document.querySelector('#d-img').complete")
                heaps.append(heap_and_nodes(cdp)[0])
        page.wait_for_function(f"document.querySelector('#d-pos').textContent.startsWith('{N_STEPS + 1:,} /')")
        page.wait_for_function(f"document.querySelector('#d-params').textContent.includes('number {N_GALLERY - 1 - N_STEPS}')")
        page.wait_for_function("document.querySelector('#d-img').complete")
        heap1, nodes1 = heap_and_nodes(cdp)
        rss1 = server.rss()
        # Closing the viewer leaves the grid at the image it showed, marked.
        page.keyboard.press("Escape")
        page.wait_for_selector(f"#grid .cell.current[data-index='{N_STEPS}']")
        box = page.locator(f"#grid .cell[data-index='{N_STEPS}']").bounding_box()
        assert bar_bottom <= box["y"] and box["y"] + box["height"] <= 800
        # The URL keeps the place: a reload comes back to the same rows.
        page.wait_for_function("location.hash.includes('pos=')")
        first = page.evaluate("+document.querySelector('#grid .cell').dataset.index")
        page.reload()
        page.wait_for_function(f"document.querySelector('#g-count').textContent.startsWith('{N_GALLERY:,}')")
        page.wait_for_function(f"+document.querySelector('#grid .cell').dataset.index === {first}")
        # A filter is a new place (the count changes, the buttons stay put); back returns to the whole gallery.
        page.fill("#f-text", '"number 42"')  # a phrase (a bare 42 is a prefix: 420, 4200...)
        page.wait_for_function("document.querySelector('#g-count').textContent.startsWith('1 image')")
        assert "q=%22number+42%22" in page.evaluate("location.hash")
        assert page.locator("#import").bounding_box() == import_box
        page.go_back()
        page.wait_for_function(f"document.querySelector('#g-count').textContent.startsWith('{N_GALLERY:,}')")
        assert page.input_value("#f-text") == ""
        # A plain PNG imported from the page, found by its group: what it does not say reads as unknown,
        # and "reuse these settings" keeps the form's own values for those.
        plain = tmp_path / "plain"
        plain.mkdir()
        Image.new("RGB", (48, 40), (0, 90, 200)).save(plain / "plain.png")
        page.evaluate(f"fetch('/api/import', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{folder: {str(plain)!r}}})}})")
        page.wait_for_function("[...document.querySelectorAll('#f-group option')].some(o => o.textContent.startsWith('import: plain'))")
        group = page.eval_on_selector_all("#f-group option", "os => os.find(o => o.textContent.startsWith('import: plain')).value")
        page.select_option("#f-group", group)
        page.wait_for_function("document.querySelector('#g-count').textContent.startsWith('1 image')")
        page.keyboard.press("Alt+1")
        page.fill("#seed", "77")
        page.fill("#cfg_scale", "6")
        page.fill("#prompt", "my own prompt")
        page.keyboard.press("Alt+2")
        page.click("#grid .cell >> nth=0")
        page.wait_for_function("document.querySelector('#d-params').textContent.includes('Size: 48x40')")
        details = page.inner_text("#d-params")
        assert "Steps" not in details and "Seed" not in details and "CFG" not in details and "not recorded in the file" in details
        page.keyboard.press("r")
        assert (page.input_value("#seed"), page.input_value("#cfg_scale"), page.input_value("#prompt")) == ("77", "6", "my own prompt")
        assert (page.input_value("#width"), page.input_value("#height")) == ("48", "40")
        print(f"browser: heap {heap0 / 2**20:.2f} -> scrolled {heap_scrolled / 2**20:.2f} -> every 250 steps "
              f"{[round(h / 2**20, 2) for h in heaps]} -> {heap1 / 2**20:.2f} MiB, nodes {nodes0} -> {nodes1} "
              f"(elements in the DOM: {elements0} on the first screen, at most {max_elements}), server RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB")  # fmt: skip
        assert heap1 <= 1.5 * heap0, (heap0, heap1)
        assert max(heaps[1:]) <= 1.1 * heaps[0], heaps  # flat while stepping: no climb per image
        assert nodes1 <= 1.5 * nodes0 + 200, (nodes0, nodes1)
        assert rss1 - rss0 < 64 * 2**20 and rss1 < 400 * 2**20, (rss0, rss1)
        page.close()
    finally:
        server.stop()
