"""The viewer's display (viewer/src/display.js) in headless Chromium: the series strip, the
layouts, the keyboard tools on the active viewport and the corner overlays, on a study of two
synthetic CT series read from our own WADO-RS."""

import numpy
import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from imaging.models import Study
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import CANVAS_STATS, ct_slice
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The animal, as the linked record writes it into the headers (PS3.3 C.7.1.1).
ANIMAL = {
    "PatientName": "Bella^Smith",
    "PatientSpeciesDescription": "Canine",
    "PatientBreedDescription": "Beagle",
    "PatientSex": "F",
    "PatientSexNeutered": "ALTERED",
    "ResponsiblePerson": "Smith^Anna",
    "StudyDate": "20261201",
}

# The mean grey level of the middle fifth of a canvas (inside the image whatever the letterbox).
CENTRE_MEAN = """(selector) => {
  const canvas = document.querySelector(selector);
  const { width, height } = canvas;
  const { data } = canvas.getContext('2d').getImageData(
    Math.floor(width * 0.4), Math.floor(height * 0.4), Math.ceil(width * 0.2), Math.ceil(height * 0.2));
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += data[i];
  return sum / (data.length / 4);
}"""

OVERLAY = "[data-cell='0'] .viewer-corner"


def bar_slice(study, series, number):
    """The second series: a bright vertical bar on a darker ground, nothing like the first's squares."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = numpy.full((ds.Rows, ds.Columns), -200, dtype=numpy.int16)
    pixels[:, 50 + 5 * number : 70 + 5 * number] = 1000
    ds.PixelData = pixels.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 300, 800
    ds.ImagePositionPatient = [0, 0, 5 * number]
    return ds, uids(
        study, series, InstanceNumber=number + 1, SeriesNumber=2, SeriesDescription="Lateral", **ANIMAL
    )


@pytest.fixture
def two_series(reference_data, ingest):  # noqa: F811
    study, first, second = generate_uid(), generate_uid(), generate_uid()
    squares = []
    for number in range(5):
        ds, changes = ct_slice(study, first, number)
        squares.append((ds, {**changes, "SeriesDescription": "Dorsal", **ANIMAL}))
    ingest(*squares, *(bar_slice(study, second, number) for number in range(5)))
    return Study.objects.get(study_instance_uid=study), first, second


def corner(page, which):
    return page.inner_text(f"{OVERLAY}.{which}")


def wait_text(page, selector, text):
    try:
        page.wait_for_function(
            "([selector, text]) => (document.querySelector(selector)?.textContent || '').includes(text)",
            arg=[selector, text],
        )
    except PlaywrightTimeoutError:  # say what was there instead
        shown = page.evaluate("(s) => document.querySelector(s)?.textContent", selector)
        raise AssertionError(f"{selector}: {text!r} awaited, {shown!r} shown") from None


def test_the_strip_layouts_tools_and_overlays(two_series, staff, live_server, page):  # noqa: F811
    study, first, second = two_series
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "viewer-display-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None

    # The overlay: the animal from the headers, the series, the image's place and the window.
    wait_text(page, f"{OVERLAY}.br", "W 800 L 300")
    assert corner(page, "tl").splitlines() == ["Bella Smith", "Canine, Beagle", "F neutered"]
    assert corner(page, "tr").splitlines() == ["Owner: Smith Anna", "2026-12-01"]
    assert corner(page, "bl").splitlines() == ["Se 1 Dorsal", "Im 1/5"]
    page.focus("#viewer")
    page.keyboard.press("ArrowDown")
    wait_text(page, f"{OVERLAY}.bl", "Im 2/5")
    # A preset by key: soft tissue 400/40, shown in the overlay.
    page.keyboard.press("5")
    wait_text(page, f"{OVERLAY}.br", "W 400 L 40")
    page.keyboard.press("Escape")  # back to the image's own window
    wait_text(page, f"{OVERLAY}.br", "W 800 L 300")

    # Invert: each grey g becomes 255 - g.
    page.wait_for_timeout(200)  # the render after the reset (no timing asserted)
    plain = page.evaluate(CENTRE_MEAN, "#viewer canvas")
    page.keyboard.press("i")
    page.wait_for_function(f"() => Math.abs(({CENTRE_MEAN})('#viewer canvas') - {plain}) > 20")
    inverted = page.evaluate(CENTRE_MEAN, "#viewer canvas")
    assert abs(plain + inverted - 255) < 4, (plain, inverted)
    page.keyboard.press("i")

    # The strip: both series; a click shows the second in the active viewport.
    assert page.locator("#viewer-strip li").count() == 2
    assert (
        page.locator("#viewer-strip li img").first.get_attribute("src").endswith(f"/series/{first}/thumbnail")
    )
    page.wait_for_timeout(200)
    before = page.evaluate(CANVAS_STATS)
    page.click(f"#viewer-strip li[data-series-uid='{second}']")
    wait_text(page, f"{OVERLAY}.bl", "Se 2 Lateral")
    page.wait_for_timeout(200)
    after = page.evaluate(CANVAS_STATS)
    assert after["checksum"] != before["checksum"], (before, after)
    assert page.locator("#viewer-strip li.shown").get_attribute("data-series-uid") == second
    page.screenshot(path=str(SCREENSHOTS / "viewer-display-second.png"))

    # 2x2 by key: four viewports, four canvases, the new ones showing the series round the study.
    page.keyboard.press("4")
    page.wait_for_function("() => document.querySelectorAll('#viewer-grid canvas').length === 4")
    assert page.locator("#viewer-grid .viewer-cell").count() == 4
    page.wait_for_selector("[data-cell='1'] .viewer[data-series-uid][data-overlay-index='0']")
    assert page.get_attribute("[data-cell='1'] .viewer", "data-series-uid") == first
    # Dragging the second series onto the fourth viewport shows it there, and makes it active.
    page.drag_and_drop(f"#viewer-strip li[data-series-uid='{second}']", "[data-cell='3']")
    wait_text(page, "[data-cell='3'] .viewer-corner.bl", "Se 2 Lateral")
    assert "active" in page.get_attribute("[data-cell='3']", "class")
    page.keyboard.press("?")
    assert page.is_visible("#viewer-help") and "Invert" in page.inner_text("#viewer-help")
    page.screenshot(path=str(SCREENSHOTS / "viewer-display-2x2.png"))
    page.keyboard.press("?")
    page.click("#viewer-toolbar [data-layout='1x2']")
    page.wait_for_function("() => document.querySelectorAll('#viewer-grid canvas').length === 2")
    page.keyboard.press("1")
    page.wait_for_function("() => document.querySelectorAll('#viewer-grid canvas').length === 1")
    assert problems == [], problems


def wait_checksum(page, expected, *, equal):
    """Until the first canvas's checksum is (or is no longer) the one given: renders follow a key
    or a mouse event on the next animation frame."""
    test = "===" if equal else "!=="
    try:
        page.wait_for_function(f"() => ({CANVAS_STATS})().checksum {test} {expected}")
    except PlaywrightTimeoutError:
        raise AssertionError((expected, equal, page.evaluate(CANVAS_STATS))) from None
    return page.evaluate(CANVAS_STATS)


def test_rotate_flip_zoom_pan_and_reset(two_series, staff, live_server, page):  # noqa: F811
    study, _, _ = two_series
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")
    page.wait_for_timeout(300)  # the first render settled (no timing asserted)
    start = page.evaluate(CANVAS_STATS)
    assert start["top"] > start["bottom"], start  # instance 1's square is in the top third
    page.focus("#viewer")

    page.keyboard.press("v")  # flipped vertically: the square at the bottom
    flipped = wait_checksum(page, start["checksum"], equal=False)
    assert flipped["bottom"] > flipped["top"], flipped
    page.keyboard.press("v")
    wait_checksum(page, start["checksum"], equal=True)

    page.keyboard.press("h")
    wait_checksum(page, start["checksum"], equal=False)
    page.keyboard.press("h")
    wait_checksum(page, start["checksum"], equal=True)

    page.keyboard.press("r")  # a quarter turn: the square from the top to the right
    turned = wait_checksum(page, start["checksum"], equal=False)
    assert abs(turned["top"] - turned["bottom"]) < abs(start["top"] - start["bottom"]), (start, turned)
    for _ in range(3):
        page.keyboard.press("r")
    wait_checksum(page, start["checksum"], equal=True)  # four quarter turns: as it was

    box = page.locator("#viewer").bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -240)
    page.keyboard.up("Control")
    wait_checksum(page, start["checksum"], equal=False)
    assert page.get_attribute("#viewer", "data-overlay-index") == "0"  # zoomed, not scrolled
    page.keyboard.press("Escape")
    wait_checksum(page, start["checksum"], equal=True)

    page.mouse.move(*middle)
    page.mouse.down(button="middle")
    page.mouse.move(middle[0] + 120, middle[1] + 60, steps=8)
    page.mouse.up(button="middle")
    wait_checksum(page, start["checksum"], equal=False)
    page.keyboard.press("0")
    wait_checksum(page, start["checksum"], equal=True)

    page.keyboard.press("z")  # the left drag zooms now, the window stays
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "Zoom"
    page.mouse.move(*middle)
    page.mouse.down()
    page.mouse.move(middle[0], middle[1] - 100, steps=8)
    page.mouse.up()
    wait_checksum(page, start["checksum"], equal=False)
    assert "W 800 L 300" in corner(page, "br")
    page.keyboard.press("Escape")
    wait_checksum(page, start["checksum"], equal=True)
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "WindowLevel"


def test_the_canvas_follows_a_window_resized(two_series, staff, live_server, page):  # noqa: F811
    """A tablet turned or a phone: the canvas takes the viewport's new size (its backing store at
    the device pixel ratio), so the image is not stretched and marks stay on what they mark."""
    study, _, _ = two_series
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")
    sizes = """() => {
      const canvas = document.querySelector('#viewer canvas');
      const ratio = window.devicePixelRatio;
      return [canvas.width, Math.round(canvas.clientWidth * ratio), canvas.height, Math.round(canvas.clientHeight * ratio)];
    }"""
    wide = page.evaluate(sizes)
    assert wide[0] == wide[1] and wide[2] == wide[3], wide
    page.set_viewport_size({"width": 375, "height": 740})
    try:
        page.wait_for_function(
            f"() => {{ const s = ({sizes})(); return s[0] === s[1] && s[2] === s[3] && s[0] < {wide[0]}; }}"
        )
    except PlaywrightTimeoutError:
        raise AssertionError((wide, page.evaluate(sizes))) from None
    page.screenshot(path=str(SCREENSHOTS / "viewer-display-phone.png"))


def test_window_presets_follow_the_modality_and_body_part(reference_data, ingest, staff, live_server, page):  # noqa: F811
    """A radiograph's presets are the windows its modality recorded (PS3.3 C.11.2.1.2), by their
    explanation; a CT of the thorax lists the lung window first, in Hounsfield units."""
    study, radiograph, ct = generate_uid(), generate_uid(), generate_uid()
    ds, changes = bar_slice(study, radiograph, 0)
    ds.Modality = "DX"
    ds.WindowCenter, ds.WindowWidth = [300, 900], [800, 200]
    ds.WindowCenterWidthExplanation = ["SOFT", "BONE"]
    ds2, changes2 = ct_slice(study, ct, 0)
    ds2.BodyPartExamined = "THORAX"
    ingest((ds, {**changes, "SeriesNumber": 1}), (ds2, {**changes2, "SeriesNumber": 2}))
    log_in(page, live_server, "veterinarian")
    page.goto(
        live_server.url + reverse("study_viewer", args=[Study.objects.get(study_instance_uid=study).pk])
    )
    page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")
    page.click(f"#viewer-strip li[data-series-uid='{radiograph}']")
    wait_text(page, "#viewer-window", "BONE 200/900 (6)")
    assert page.locator("#viewer-window option").all_inner_texts() == [
        "Window…",
        "SOFT 800/300 (5)",
        "BONE 200/900 (6)",
    ]
    page.focus("#viewer")
    page.keyboard.press("6")
    wait_text(page, f"{OVERLAY}.br", "W 200 L 900")
    page.select_option("#viewer-window", label="SOFT 800/300 (5)")
    wait_text(page, f"{OVERLAY}.br", "W 800 L 300")

    page.click(f"#viewer-strip li[data-series-uid='{ct}']")
    wait_text(page, "#viewer-window", "Lung")
    options = page.locator("#viewer-window option").all_inner_texts()
    assert options[1] == "Lung 1500/-600 (6)" and len(options) == 5, options
    page.keyboard.press("8")
    wait_text(page, f"{OVERLAY}.br", "W 80 L 40")
