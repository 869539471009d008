"""The page's img2img, inpainting and upscale controls in Debian's Chromium (Playwright).

An init image is picked with the file input, a mask is drawn on it with the mouse over its left
half, the run is made by the embedded model, and the result's right half (less the blur band) is
the original's pixels (A1111's overlay). Then the result is sent to img2img from the detail view,
and upscaled from there, and the upscaled image says which image it came from.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.web.test_browser import FLAGS, ServeProcess, chromium_path, shots_dir

pytestmark = pytest.mark.browser

SIDE = 64  # the embedded model's native size: the init image's, and the result's


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        yield instance
        instance.close()


def _source(path: Path) -> np.ndarray:
    """A picture with detail everywhere (so a changed pixel shows): a gradient with stripes."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    pixels = np.stack([x * 4, y * 4, ((x // 4 + y // 4) % 2) * 200 + 30], axis=-1).astype("uint8")
    Image.fromarray(pixels).save(path)
    return pixels


def _draw_left_half(page) -> None:
    """Mouse strokes over the mask canvas covering its left half (image x < 32), brush 16 px."""
    page.eval_on_selector("#mask-brush", "el => { el.value = '16'; el.dispatchEvent(new Event('input')); }")
    box = page.locator("#mask-canvas").bounding_box()
    scale = box["width"] / SIDE
    for row in range(0, SIDE + 1, 6):
        y = box["y"] + row * scale
        page.mouse.move(box["x"] + 2 * scale, y)
        page.mouse.down()
        for x in (8, 16, 24, 25):
            page.mouse.move(box["x"] + x * scale, y, steps=2)
        page.mouse.up()


def test_inpaint_from_the_page_keeps_the_unmasked_half(browser, tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "home")
    try:
        original = _source(tmp_path / "init.png")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url + "/")
        page.fill("#prompt", "a blue square in the middle on a yellow background")
        page.fill("#n_images", "2")
        page.fill("#steps", "8")
        page.fill("#seed", "11")
        page.click("#img2img-panel summary")
        page.set_input_files("#init-file", str(tmp_path / "init.png"))
        page.wait_for_selector("#mask-editor:not([hidden])")
        assert "64×64" in page.inner_text("#init-summary")
        # The tools: a stroke, cleared; inverted twice is the same mask; the eraser removes paint.
        assert page.evaluate("maskIsEmpty()")
        _draw_left_half(page)
        assert not page.evaluate("maskIsEmpty()")
        painted = page.evaluate("Array.from(maskCanvas().getContext('2d').getImageData(0, 0, 64, 64).data)"
                                ".filter((v, i) => i % 4 === 3 && v === 255).length")  # fmt: skip
        assert 31 * 64 <= painted <= 34 * 64, painted  # the left half, give or take the brush's round edge
        page.click("#mask-invert")
        page.click("#mask-invert")
        again = page.evaluate("Array.from(maskCanvas().getContext('2d').getImageData(0, 0, 64, 64).data)"
                              ".filter((v, i) => i % 4 === 3 && v === 255).length")  # fmt: skip
        assert again == painted
        page.fill("#mask_blur", "4")
        page.click("#generate")
        try:
            page.wait_for_function("document.querySelectorAll('#run-strip img').length === 2", timeout=180_000)
        except Exception:  # say what the page said
            raise AssertionError(f"{page.inner_text('#gen-error')!r} {page.inner_text('#progress-text')!r}") from None
        ids = [int(i) for i in page.eval_on_selector_all("#run-strip img", "els => els.map(e => e.dataset.id)")]
        page.wait_for_function("document.querySelector('#progress-text').textContent.startsWith('done')")
        for image_id in ids:
            made = np.asarray(Image.open(io.BytesIO(httpx.get(f"{server.url}/api/images/{image_id}/file").content))
                              .convert("RGB"))  # fmt: skip
            assert made.shape == (SIDE, SIDE, 3)
            diff = np.abs(made.astype(int) - original.astype(int))
            # Unmasked (x >= 32), less the blur band and the brush's edge: the original, as A1111 overlays it.
            kept = diff[:, 40:]
            assert kept.mean() <= 2 and kept.max() <= 8, (kept.mean(), kept.max())
            assert diff[:, :24].mean() > 8  # and the painted half was repainted
        image_id = ids[0]
        made = np.asarray(Image.open(io.BytesIO(httpx.get(f"{server.url}/api/images/{image_id}/file").content)).convert("RGB"))
        record = httpx.get(f"{server.url}/api/images/{image_id}").json()
        assert record["init_hash"] and "Mask blur: 4" in record["infotext"] and "Denoising strength: 0.75" in record["infotext"]
        page.screenshot(path=str(shots_dir(tmp_path) / "inpaint.png"))
        # The best-of-run strip sends an image on: "inpaint" under the first makes it the init image, unpainted.
        page.wait_for_selector("#best:not([hidden])")
        best = int(page.get_attribute("#best-strip figure img", "data-id"))
        page.click("#best-strip figure >> nth=0 >> text=inpaint")
        page.wait_for_function(f"document.querySelector('#init-summary').textContent.includes('image #{best}')")
        assert page.evaluate("maskIsEmpty()") and page.evaluate("init.ref") == f"image:{best}"

        # From the detail view: send the result to img2img (it becomes the init image, named by its id)...
        page.click("#run-strip img")
        page.wait_for_selector("#detail:not([hidden])")
        page.click("#d-img2img")
        page.wait_for_selector("#detail", state="hidden")
        assert f"image #{image_id}" in page.inner_text("#init-summary") and page.evaluate("maskIsEmpty()")
        assert page.evaluate("init.ref") == f"image:{image_id}"
        # ...and upscale it: Nearest, 2x; the new image opens, saying where it came from.
        page.click("#run-strip img")
        page.wait_for_selector("#detail:not([hidden])")
        page.select_option("#d-upscaler", "Nearest")
        page.fill("#d-scale", "2")
        page.click("#d-upscale")
        page.wait_for_function("document.querySelector('#d-upscale-status').textContent.startsWith('done')",
                               timeout=120_000)  # fmt: skip
        page.wait_for_function(f"document.querySelector('#d-lineage a')?.textContent === 'from image #{image_id}'")
        upscaled = int(page.inner_text("#d-upscale-status").split("#")[1])
        big = Image.open(io.BytesIO(httpx.get(f"{server.url}/api/images/{upscaled}/file").content)).convert("RGB")
        assert big.size == (2 * SIDE, 2 * SIDE)
        assert np.array_equal(np.asarray(big)[::2, ::2], made)
        page.close()

        # Touch paints too (a phone or a tablet): a tap on the image leaves a dot of mask.
        context = browser.new_context(has_touch=True, viewport={"width": 800, "height": 900})
        touch = context.new_page()
        touch.goto(server.url + "/")
        touch.click("#img2img-panel summary")
        touch.set_input_files("#init-file", str(tmp_path / "init.png"))
        touch.wait_for_selector("#mask-editor:not([hidden])")
        box = touch.locator("#mask-canvas").bounding_box()
        touch.touchscreen.tap(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)
        touch.wait_for_function("!maskIsEmpty()")
        right = touch.evaluate("Array.from(maskCanvas().getContext('2d').getImageData(40, 0, 24, 32).data)"
                               ".some((v, i) => i % 4 === 3 && v > 0)")  # fmt: skip
        assert right
        context.close()
    finally:
        server.stop()
