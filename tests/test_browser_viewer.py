"""The study viewer (viewer/, Cornerstone3D bundled into imaging/static/imaging/viewer/) in
headless Chromium: a five-slice CT series read from our own WADO-RS with the staff session,
scrolled with the arrow key and the wheel, windowed with a left drag."""

import numpy
import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from imaging.models import Study
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 5

# The viewport's canvas as numbers: its mean grey level, a checksum of its pixels and the sums of
# its top and bottom thirds (the image fills the canvas's height), read in the
# page (Playwright's evaluate runs under the page's Content-Security-Policy unaffected).
CANVAS_STATS = """() => {
  const canvas = document.querySelector('#viewer canvas');
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0, checksum = 0, top = 0, bottom = 0;
  const third = canvas.width * Math.floor(canvas.height / 3) * 4;
  for (let i = 0; i < data.length; i += 4) {
    sum += data[i];
    if (i < third) top += data[i];
    if (i >= data.length - third) bottom += data[i];
    checksum = (checksum * 31 + data[i] + data[i + 1] * 7 + data[i + 2] * 13) % 2147483647;
  }
  return { mean: sum / (data.length / 4), checksum, top, bottom, width: canvas.width, height: canvas.height };
}"""


def ct_slice(study, series, number):
    """CT_small's header with pixels of our own: a bright square whose place and brightness
    differ from slice to slice, on a soft-tissue background."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = numpy.full((ds.Rows, ds.Columns), 40, dtype=numpy.int16)
    top = 10 + 20 * number
    pixels[top : top + 30, 20:100] = 400 + 150 * number
    ds.PixelData = pixels.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 300, 800
    ds.ImagePositionPatient = [0, 0, 5 * number]
    changes = uids(study, series, InstanceNumber=number + 1, SeriesNumber=1)
    return ds, changes


@pytest.fixture
def ct_study(reference_data, ingest):  # noqa: F811
    study, series = generate_uid(), generate_uid()
    # Ingested out of order: the viewer puts them in instance-number order.
    ingest(*(ct_slice(study, series, number) for number in (3, 0, 4, 1, 2)))
    return Study.objects.get(study_instance_uid=study)


def test_the_viewer_shows_the_first_series_and_scrolls_and_windows_it(ct_study, staff, live_server, page):  # noqa: F811
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_detail", args=[ct_study.pk]))
    page.click("text=Open in the viewer")
    page.wait_for_url(live_server.url + reverse("study_viewer", args=[ct_study.pk]))
    # The project's policy, unchanged: the page compiles no WebAssembly. The decoding worker does,
    # under its own script's response headers (CSP 3: a worker's policy is its script's, not the
    # page's); WhiteNoise serves that static file ahead of the policy's middleware.
    policy = page.context.request.get(page.url).headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in policy and "wasm-unsafe-eval" not in policy

    try:
        page.wait_for_selector("#viewer[data-state=rendered][data-image-index='0']")
    except PlaywrightTimeoutError:  # say why: the page's status line and the console's errors
        page.screenshot(path=str(SCREENSHOTS / "viewer-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None
    first = page.evaluate(CANVAS_STATS)
    assert first["width"] > 0 and first["mean"] > 0, first
    # Instance 1 first (ingested fourth): its bright square is in the image's top third.
    assert first["top"] > first["bottom"], first
    page.screenshot(path=str(SCREENSHOTS / "viewer-first.png"))
    assert "Image 1 of 5" in page.inner_text("#viewer-status")

    page.focus("#viewer")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#viewer[data-image-index='1']")
    second = page.evaluate(CANVAS_STATS)
    assert second["checksum"] != first["checksum"]
    assert "Image 2 of 5" in page.inner_text("#viewer-status")

    box = page.locator("#viewer").bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.wheel(0, 120)
    page.wait_for_selector("#viewer[data-image-index='2']")
    third = page.evaluate(CANVAS_STATS)
    page.keyboard.press("ArrowUp")
    page.wait_for_selector("#viewer[data-image-index='1']")
    assert page.evaluate(CANVAS_STATS)["checksum"] == second["checksum"]  # the same image again

    # Window/level: a left drag to the right widens the window, downwards raises the level.
    before = page.evaluate(CANVAS_STATS)
    page.mouse.move(*middle)
    page.mouse.down()
    page.mouse.move(middle[0] + 150, middle[1] + 100, steps=10)
    page.mouse.up()
    page.wait_for_timeout(300)  # the render after the last move event (no timing asserted)
    after = page.evaluate(CANVAS_STATS)
    assert after["mean"] != before["mean"], (before, after)
    page.screenshot(path=str(SCREENSHOTS / "viewer-windowed.png"))
    assert third["checksum"] not in (first["checksum"], second["checksum"])
    assert not [p for p in problems if "Content Security Policy" in p], problems


def test_the_viewer_is_for_staff_who_may_see_studies(ct_study, live_server, client):
    url = reverse("study_viewer", args=[ct_study.pk])
    assert client.get(url).status_code == 302  # to the login page
    assert client.get(reverse("study_viewer", args=[999_999])).status_code == 302


def test_the_viewer_decodes_jpeg_2000_with_its_own_webassembly(
    reference_data, ingest, staff, live_server, page
):  # noqa: F811
    """A JPEG 2000 lossless image: decoded in the worker by the OpenJPEG codec's WebAssembly,
    served from our static files, with the page's Content-Security-Policy as it is."""
    study = generate_uid()
    ingest(("MR_small_jp2klossless.dcm", uids(study, InstanceNumber=1, SeriesNumber=1)))
    requested, problems = [], []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    log_in(page, live_server, "veterinarian")
    page.goto(
        live_server.url + reverse("study_viewer", args=[Study.objects.get(study_instance_uid=study).pk])
    )
    page.wait_for_selector("#viewer[data-state=rendered][data-image-index='0']")
    assert page.evaluate(CANVAS_STATS)["mean"] > 0
    assert [url for url in requested if url.endswith("/codecs/openjpegwasm_decode.wasm")]
    # Nothing from elsewhere (blob: URLs the page makes itself are of its own origin).
    assert [url for url in requested if not url.removeprefix("blob:").startswith(live_server.url)] == []
    assert problems == []
    page.screenshot(path=str(SCREENSHOTS / "viewer-jpeg2000.png"))
