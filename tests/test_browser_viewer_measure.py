"""Measuring in the viewer (viewer/src/measure.js) in headless Chromium: lengths, angles and ROIs
drawn with the mouse on synthetic radiographs and a CT slice read from our own WADO-RS, in mm
from Pixel Spacing, with the detector's caveat from Imager Pixel Spacing, in px without spacing,
and after a user's calibration. Each result is read twice: the text drawn on the image and the
annotation's data.vetpacs (listed as data attributes in #measure-values)."""

import math
import re

import numpy
import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from imaging.models import Study
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZE = 400  # the radiographs' rows and columns
MARKS = (100, 300)  # the columns of the two vertical marks, 200 px apart, rows 150-250
DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation

# Where the image is on the canvas: the middle row's and column's first and last pixels brighter
# than the black around the image, and the middle row's bright runs (the marks), in page pixels.
GEOMETRY = """() => {
  const canvas = document.querySelector('#viewer canvas');
  const { width, height } = canvas;
  const { data } = canvas.getContext('2d').getImageData(0, 0, width, height);
  const grey = (x, y) => data[(y * width + x) * 4];
  const midY = Math.floor(height / 2), midX = Math.floor(width / 2);
  let left = -1, right = -1, top = -1, bottom = -1;
  for (let x = 0; x < width; x++) if (grey(x, midY) > 8) { if (left < 0) left = x; right = x; }
  for (let y = 0; y < height; y++) if (grey(midX, y) > 8) { if (top < 0) top = y; bottom = y; }
  const runs = [];
  let start = -1;
  for (let x = 0; x <= width; x++) {
    const bright = x < width && grey(x, midY) > 200;
    if (bright && start < 0) start = x;
    if (!bright && start >= 0) { runs.push((start + x - 1) / 2); start = -1; }
  }
  const box = canvas.getBoundingClientRect();
  const sx = box.width / width, sy = box.height / height;
  return {
    left: box.left + left * sx, right: box.left + (right + 1) * sx,
    top: box.top + top * sy, bottom: box.top + (bottom + 1) * sy,
    marks: runs.map((x) => box.left + (x + 0.5) * sx), middle: box.top + (midY + 0.5) * sy,
  };
}"""


# Takes the calibration out of Cornerstone's state, then adds a saved copy (JSON, a new UID) as
# the annotations feature restores marks; the lengths' units after each step.
RESTORE = """async () => {
  const state = window.vetpacsAnnotations;
  const units = () => [...document.querySelectorAll("#measure-values li[data-kind='length']")].map((li) => li.dataset.unit);
  const settle = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50)));
  const calibration = state.getAllAnnotations().find((a) => a.data.vetpacs && a.data.vetpacs.kind === 'calibration');
  const copy = JSON.parse(JSON.stringify(calibration));
  copy.annotationUID = 'restored-' + calibration.annotationUID;
  state.removeAnnotation(calibration.annotationUID);
  await settle();
  const removed = units();
  state.addAnnotation(copy, document.querySelector('#viewer'));
  await settle();
  return { removed, restored: units() };
}"""


def radiograph(study, series, number, **spacing):
    """A radiograph-like image: a grey ground with two bright vertical marks 200 px apart and a
    bright horizontal one below them, with the spacing attributes given (or none)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword in ("PixelSpacing", "SliceThickness", "ImageOrientationPatient", "ImagePositionPatient"):
        if keyword in ds:
            delattr(ds, keyword)
    pixels = numpy.full((SIZE, SIZE), 500, dtype=numpy.int16)
    for column in MARKS:
        pixels[150:250, column - 1 : column + 2] = 3000
    pixels[299:302, 150:250] = 3000
    ds.Rows = ds.Columns = SIZE
    ds.PixelData = pixels.tobytes()
    ds.Modality, ds.SOPClassUID = "DX", DX
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 1500, 3000
    for keyword, value in spacing.items():
        setattr(ds, keyword, value)
    return ds, uids(study, series, InstanceNumber=number + 1, SeriesNumber=1 + len(spacing))


def open_viewer(page, live_server, study_uid, series_count=1):
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    study = Study.objects.get(study_instance_uid=study_uid)
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "viewer-measure-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None
    page.wait_for_timeout(300)  # the first render settled (no timing asserted)
    page.focus("#viewer")
    return problems


class Image:
    """Image pixel (column, row) -> page point, from where the image lies on the canvas."""

    def __init__(self, page, size):
        self.geometry = page.evaluate(GEOMETRY)
        self.columns, self.rows = size

    def at(self, column, row):
        g = self.geometry
        x = g["left"] + (column + 0.5) * (g["right"] - g["left"]) / self.columns
        y = g["top"] + (row + 0.5) * (g["bottom"] - g["top"]) / self.rows
        return x, y


def drag(page, start, end):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=10)
    page.mouse.up()


def click(page, point):
    page.mouse.move(*point, steps=4)
    page.mouse.down()
    page.mouse.up()


def results(page, kind):
    """Each annotation of that kind: (value, unit, text) from data.vetpacs as listed."""
    return page.evaluate(
        """(kind) => [...document.querySelectorAll(`#measure-values li[data-kind='${kind}']`)].map(
             (li) => [li.dataset.value === '' ? null : Number(li.dataset.value), li.dataset.unit, li.textContent])""",
        kind,
    )


def wait_results(page, kind, count):
    try:
        page.wait_for_function(
            "([kind, count]) => document.querySelectorAll(`#measure-values li[data-kind='${kind}']`).length === count",
            arg=[kind, count],
        )
    except PlaywrightTimeoutError:
        raise AssertionError((kind, count, page.inner_text("#measure-values"))) from None
    return results(page, kind)


def drawn_text(page):
    """The text Cornerstone drew over the image (its SVG layer)."""
    return page.evaluate(
        "() => [...document.querySelectorAll('#viewer svg text')].map((t) => t.textContent).join('\\n')"
    )


def number_before(text, unit):
    found = re.findall(rf"(-?\d+(?:\.\d+)?) ?{unit}", text)
    assert found, (unit, text)
    return [float(value) for value in found]


def test_length_angle_and_cobb_on_a_radiograph_with_pixel_spacing(
    reference_data, ingest, staff, live_server, page
):  # noqa: F811
    study, series = generate_uid(), generate_uid()
    ingest(radiograph(study, series, 0, PixelSpacing=[0.5, 0.5]))
    problems = open_viewer(page, live_server, study)
    image = Image(page, (SIZE, SIZE))
    marks = image.geometry["marks"]
    assert len(marks) == 2, image.geometry
    middle = image.geometry["middle"]

    # The length from mark to mark: 200 px at 0.5 mm = 100 mm, at the patient: no caveat.
    page.keyboard.press("l")
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "Length"
    assert page.get_attribute("#measure-tools [data-tool='Length']", "aria-pressed") == "true"
    drag(page, (marks[0], middle), (marks[1], middle))
    [(value, unit, text)] = wait_results(page, "length", 1)
    assert unit == "mm" and abs(value - 100) <= 1, (value, unit, text)
    assert "magnification" not in text and "uncalibrated" not in text, text
    shown = drawn_text(page)
    assert abs(number_before(shown, "mm")[0] - 100) <= 1, shown

    # An angle of 60° at (120, 120), away from the line (a handle near the mouse would move):
    # one arm to the right, the other up and right.
    page.keyboard.press("a")
    vertex = (120, 120)
    arm1 = (220, 120)
    arm2 = (120 + 100 * math.cos(math.radians(60)), 120 - 100 * math.sin(math.radians(60)))
    drag(page, image.at(*arm1), image.at(*vertex))
    click(page, image.at(*arm2))
    [(value, unit, text)] = wait_results(page, "angle", 1)
    assert unit == "deg" and abs(value - 60) <= 1, (value, unit, text)
    assert abs(number_before(drawn_text(page), "°")[0] - 60) <= 1, drawn_text(page)

    # A Cobb angle between a level line and one at 25°.
    page.keyboard.press("c")
    drag(page, image.at(60, 330), image.at(160, 330))
    tilt = math.radians(25)
    drag(page, image.at(220, 360), image.at(220 + 120 * math.cos(tilt), 360 - 120 * math.sin(tilt)))
    [(value, unit, text)] = wait_results(page, "cobb", 1)
    assert unit == "deg" and abs(value - 25) <= 1, (value, unit, text)
    page.screenshot(path=str(SCREENSHOTS / "viewer-measure-radiograph.png"))

    # W gives the left drag back to window and level, away from the marks drawn.
    page.keyboard.press("w")
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "WindowLevel"
    before = page.inner_text("[data-cell='0'] .viewer-corner.br")
    drag(page, image.at(40, 40), image.at(140, 100))
    page.wait_for_function(
        "(before) => document.querySelector(\"[data-cell='0'] .viewer-corner.br\").textContent !== before",
        arg=before,
    )
    assert len(results(page, "length")) == 1  # the drag drew nothing
    assert problems == [], problems


def test_detector_spacing_no_spacing_and_a_users_calibration(
    reference_data, ingest, staff, live_server, page
):  # noqa: F811
    study, detector, bare = generate_uid(), generate_uid(), generate_uid()
    ingest(
        radiograph(study, detector, 0, ImagerPixelSpacing=[0.5, 0.5]),
        radiograph(study, bare, 0),
        radiograph(study, bare, 1),
    )
    problems = open_viewer(page, live_server, study)
    # The series without spacing sorts first (series number 1), the detector's second.
    image = Image(page, (SIZE, SIZE))
    marks, middle = image.geometry["marks"], image.geometry["middle"]
    assert len(marks) == 2, image.geometry

    # No spacing: pixels, and the word.
    page.keyboard.press("l")
    drag(page, (marks[0], middle), (marks[1], middle))
    [(value, unit, text)] = wait_results(page, "length", 1)
    assert unit == "px" and abs(value - 200) <= 2 and "uncalibrated" in text, (value, unit, text)
    shown = drawn_text(page)
    assert "uncalibrated" in shown and abs(number_before(shown, "px")[0] - 200) <= 2, shown

    # The calibration on the series' second image: mark to mark (200 px) is 50 mm.
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#viewer[data-overlay-index='1']")
    page.keyboard.press("m")
    drag(page, (marks[0], middle + 30), (marks[1], middle + 30))
    page.wait_for_selector("#measure-ask:not([hidden])")
    assert page.input_value("#measure-ask input") == "25"  # the calibration ball, suggested
    page.fill("#measure-ask input", "50")
    page.press("#measure-ask input", "Enter")
    [(value, unit, _)] = wait_results(page, "calibration", 1)
    assert (value, unit) == (50, "mm")
    # The earlier line, on the first image: 200 px x 0.25 mm = 50 mm, calibrated by the user.
    page.wait_for_function(
        "() => document.querySelector(\"#measure-values li[data-kind='length']\").dataset.unit === 'mm'"
    )
    [(value, unit, text)] = results(page, "length")
    assert unit == "mm" and abs(value - 50) <= 1 and "calibrated by user" in text, (value, unit, text)
    # A later line of 100 px (half the marks' distance) on this image: 25 mm.
    page.keyboard.press("l")
    quarter = marks[0] + (marks[1] - marks[0]) / 4
    drag(page, (quarter, middle - 30), (quarter + (marks[1] - marks[0]) / 2, middle - 30))
    lengths = wait_results(page, "length", 2)
    assert abs(lengths[1][0] - 25) <= 1 and lengths[1][1] == "mm", lengths
    shown = drawn_text(page)
    assert "calibrated by user" in shown and any(abs(v - 25) <= 1 for v in number_before(shown, "mm")), shown
    page.keyboard.press("ArrowUp")  # the first image's line, drawn again in mm
    page.wait_for_selector("#viewer[data-overlay-index='0']")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer svg text')].some((t) => t.textContent.includes('mm'))"
    )
    assert abs(number_before(drawn_text(page), "mm")[0] - 50) <= 1, drawn_text(page)
    page.screenshot(path=str(SCREENSHOTS / "viewer-measure-calibrated.png"))

    # Removed, the series is uncalibrated again; restored as the annotations feature does (a saved
    # copy added to Cornerstone's state), its calibration is in force again.
    saved = page.evaluate(RESTORE)
    assert saved["removed"] == ["px", "px"] and saved["restored"] == ["mm", "mm"], saved
    [(value, unit, text)] = results(page, "length")[:1]
    assert abs(value - 50) <= 1 and "calibrated by user" in text, (value, unit, text)

    # The detector's series: mm with the caveat; the other series' calibration does not apply.
    page.click(f"#viewer-strip li[data-series-uid='{detector}']")
    page.wait_for_function(
        "(uid) => document.querySelector('#viewer').dataset.seriesUid === uid", arg=detector
    )
    page.wait_for_timeout(300)
    page.focus("#viewer")
    page.keyboard.press("l")
    drag(page, (marks[0], middle), (marks[1], middle))
    lengths = wait_results(page, "length", 3)
    value, unit, text = lengths[2]
    assert unit == "mm" and abs(value - 100) <= 1, lengths
    assert "at the detector: magnification not corrected" in text, text
    assert "at the detector: magnification not corrected" in drawn_text(page)
    page.screenshot(path=str(SCREENSHOTS / "viewer-measure-detector.png"))
    assert problems == [], problems


def test_rois_on_ct_in_hounsfield_units_and_an_arrow_with_text(
    reference_data, ingest, staff, live_server, page
):  # noqa: F811
    study, series = generate_uid(), generate_uid()
    ds, changes = ct_slice(study, series, 0)  # 40 HU, with 400 HU in rows 10-39, columns 20-99
    ingest((ds, changes))
    spacing = float(ds.PixelSpacing[0])
    problems = open_viewer(page, live_server, study)
    image = Image(page, (ds.Columns, ds.Rows))

    page.keyboard.press("q")
    drag(page, image.at(30, 15), image.at(90, 34))
    [(area, unit, text)] = wait_results(page, "rectangle", 1)
    assert unit == "mm2", (area, unit, text)
    assert abs(area - 60 * 19 * spacing**2) < 0.15 * 60 * 19 * spacing**2, (area, text)
    mean, sd = re.search(r"mean (-?[\d.]+) HU, SD ([\d.]+) HU", text).groups()
    assert abs(float(mean) - 400) < 0.5 and float(sd) < 0.5, text
    shown = drawn_text(page)
    assert "Mean 400 HU" in shown and "SD 0 HU" in shown, shown

    # On the annotation itself, for saving and the report: the statistics and the image it is on.
    mark = page.evaluate(
        """() => window.vetpacsAnnotations.getAllAnnotations()
             .filter((a) => a.data.vetpacs && a.data.vetpacs.kind === 'rectangle')
             .map((a) => ({ vetpacs: a.data.vetpacs, imageId: a.metadata.referencedImageId }))[0]"""
    )
    assert mark["vetpacs"]["mean"] == 400 and mark["vetpacs"]["sd"] == 0, mark
    assert mark["vetpacs"]["statsUnit"] == "[hnsf'U]" and mark["vetpacs"]["value"] == area, mark
    assert mark["imageId"].endswith(f"/instances/{changes['SOPInstanceUID']}/frames/1"), mark

    # An ellipse over the 40 HU ground.
    page.keyboard.press("e")
    drag(page, image.at(40, 70), image.at(80, 100))
    [(area, unit, text)] = wait_results(page, "ellipse", 1)
    mean, sd = re.search(r"mean (-?[\d.]+) HU, SD ([\d.]+) HU", text).groups()
    assert unit == "mm2" and area > 0 and abs(float(mean) - 40) < 0.5 and float(sd) < 0.5, text

    # An arrow: its text asked in the toolbar's form, kept on the annotation.
    page.keyboard.press("x")
    drag(page, image.at(100, 110), image.at(60, 25))
    page.wait_for_selector("#measure-ask:not([hidden])")
    page.screenshot(path=str(SCREENSHOTS / "viewer-measure-ask.png"))
    page.fill("#measure-ask input", "Mass")
    page.press("#measure-ask input", "Enter")
    [(value, unit, text)] = wait_results(page, "arrow", 1)
    assert (value, text) == (None, "Mass")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer svg text')].some((t) => t.textContent === 'Mass')"
    )
    # A text label where clicked.
    page.keyboard.press("y")
    click(page, image.at(100, 60))
    page.wait_for_selector("#measure-ask:not([hidden])")
    page.fill("#measure-ask input", "Left kidney")
    page.press("#measure-ask input", "Enter")
    [(value, unit, text)] = wait_results(page, "text", 1)
    assert (value, text) == (None, "Left kidney")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer svg text')].some((t) => t.textContent === 'Left kidney')"
    )
    page.screenshot(path=str(SCREENSHOTS / "viewer-measure-ct.png"))
    page.set_viewport_size({"width": 375, "height": 812})
    page.wait_for_timeout(300)  # the resize's render (no timing asserted)
    page.screenshot(path=str(SCREENSHOTS / "viewer-measure-ct-375.png"), full_page=True)
    assert problems == [], problems
