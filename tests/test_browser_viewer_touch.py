"""The viewer on a tablet, in headless Chromium with touch (Playwright's hasTouch, the touches
sent through the DevTools protocol's Input.dispatchTouchEvent as a touchscreen sends them): one
finger windows, two fingers pinch to zoom and move to pan, a finger on the scroll bar scrolls the
stack, and the toolbar's buttons are big enough for a finger."""

import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.test_browser_orders import SCREENSHOTS, browser, log_in  # noqa: F401  (fixtures)
from tests.test_browser_viewer_cine import CELL, SLICES, ct_thirty, wait_text  # noqa: F401  (fixture)
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TABLET = {"width": 820, "height": 1180}
PHONE = {"width": 375, "height": 812}
# Where the first slice's bright square ends, down the canvas's middle column, in CSS pixels.
SQUARE_BOTTOM = """() => {
  const canvas = document.querySelector('#viewer canvas');
  const { data } = canvas.getContext('2d').getImageData(Math.floor(canvas.width / 2), 0, 1, canvas.height);
  let bottom = -1;
  for (let y = 0; y < canvas.height; y += 1) if (data[4 * y] > 100) bottom = y;
  return bottom / (canvas.height / canvas.clientHeight);
}"""


def touch(cdp, kind, *points):
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
    )


def gesture(cdp, starts, ends, steps=10):
    """Fingers down at ``starts``, moved together in steps to ``ends``, lifted."""
    touch(cdp, "touchStart", *starts)
    for step in range(1, steps + 1):
        points = [
            (sx + (ex - sx) * step / steps, sy + (ey - sy) * step / steps)
            for (sx, sy), (ex, ey) in zip(starts, ends, strict=True)
        ]
        touch(cdp, "touchMove", *points)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def scale(page):
    return float(page.get_attribute("#viewer", "data-pixel-scale"))


def test_touch_windows_pinches_pans_and_scrolls(ct_thirty, staff, live_server, browser):  # noqa: F811
    context = browser.new_context(viewport=TABLET, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_viewer", args=[ct_thirty.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered][data-loaded=all][data-pixel-scale]")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "viewer-touch-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None
    wait_text(page, f"{CELL} .viewer-corner.br", "W 800 L 300")
    cdp = context.new_cdp_session(page)
    box = page.locator("#viewer").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # Buttons a finger can hit (44 CSS pixels, WCAG 2.5.5) at a tablet's width.
    for button in page.locator("#viewer-toolbar .button:visible").all():
        size = button.bounding_box()
        assert size["height"] >= 44 and size["width"] >= 44, (button.inner_text(), size)

    # One finger: the left button's tool, window and level.
    gesture(cdp, [(cx, cy)], [(cx + 120, cy + 80)])
    page.wait_for_function(
        f"() => !document.querySelector(\"{CELL} .viewer-corner.br\").textContent.includes('W 800 L 300')"
    )
    assert page.get_attribute("#viewer", "data-overlay-index") == "0"  # windowed, not scrolled

    # Two fingers apart (80 -> 140 pixels): zoomed in (ZoomTool's pinch scales by the change in
    # the fingers' distance over the viewport's height, so about 1.4 times here).
    before = scale(page)
    gesture(cdp, [(cx - 40, cy), (cx + 40, cy)], [(cx - 70, cy), (cx + 70, cy)])
    page.wait_for_function(
        f"() => Number(document.querySelector('#viewer').dataset.pixelScale) > {before * 1.2}"
    )
    zoomed = scale(page)
    page.screenshot(path=str(SCREENSHOTS / "viewer-touch-pinched-820.png"))

    # Two fingers moved together: the image follows them, the zoom stays.
    bottom = page.evaluate(SQUARE_BOTTOM)
    assert bottom > 0, bottom
    gesture(cdp, [(cx - 60, cy), (cx + 60, cy)], [(cx - 60, cy + 100), (cx + 60, cy + 100)])
    page.wait_for_function(f"() => ({SQUARE_BOTTOM})() > {bottom + 50}")
    assert abs(scale(page) - zoomed) < zoomed * 0.1, (zoomed, scale(page))

    # A finger along the scroll bar goes through the stack.
    bar = page.locator(f"{CELL} .viewer-scroll").bounding_box()
    assert bar["width"] >= 24, bar  # wide enough for a finger
    x = bar["x"] + bar["width"] / 2
    gesture(cdp, [(x, bar["y"] + 2)], [(x, bar["y"] + bar["height"] - 2)])
    page.wait_for_selector(f"#viewer[data-overlay-index='{SLICES - 1}']")
    page.screenshot(path=str(SCREENSHOTS / "viewer-touch-820.png"))

    # And on a phone's width the page still holds together (looked at, not measured).
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "viewer-touch-375.png"), full_page=True)
    assert problems == [], problems
    context.close()
