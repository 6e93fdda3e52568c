"""The veterinary measurements (viewer/src/vettools.js, viewer/src/vet/) in headless Chromium:
each a guided point placement clicked with the mouse at known image pixels on synthetic images
read from our own WADO-RS, its result on the page and in the annotation's data.vetpacs, and a
dragged handle recomputing it."""

import math

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

SIZE = 400
HOOK = "document.querySelector('#viewer-grid').vettools"

# The thorax (image pixels, column then row): a vertical long axis of 212 px, a horizontal short
# axis of 168 px, vertebrae of 40 px from T4's cranial edge: VHS = 212/40 + 168/40 = 5.3 + 4.2.
CARINA, APEX = (150, 100), (150, 312)
SHORT = [(66, 220), (234, 220)]
MARKS = [(100 + 40 * i, 40) for i in range(7)]  # T4 .. T10 cranial edges
ATRIUM = (210, 180)  # 100 px from the carina: VLAS 2.5


def image(study, pixels_drawn, spacing=(0.5, 0.5), **more):
    """CT_small's header over a 400 x 400 image of our own (marks drawn bright on dark)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = numpy.zeros((SIZE, SIZE), dtype=numpy.int16)
    pixels_drawn(pixels)
    ds.Rows, ds.Columns = SIZE, SIZE
    ds.PixelData = pixels.tobytes()
    ds.PixelSpacing = list(spacing)
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 400, 800
    return ds, uids(study, generate_uid(), InstanceNumber=1, SeriesNumber=1, **more)


def dot(pixels, point, value=800, radius=3):
    column, row = point
    pixels[row - radius : row + radius + 1, column - radius : column + radius + 1] = value


def thorax(pixels):
    rows, columns = numpy.mgrid[0:SIZE, 0:SIZE]
    heart = ((columns - 150) / 84) ** 2 + ((rows - 206) / 106) ** 2 <= 1
    pixels[heart] = 300
    for mark in MARKS:
        dot(pixels, mark)
    for point in (CARINA, APEX, *SHORT, ATRIUM):
        dot(pixels, point, 700, 2)


def open_viewer(page, live_server, study):
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered]")
        page.wait_for_function(f"() => !!{HOOK}")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None
    page.wait_for_timeout(200)  # the first render settled (no timing asserted)
    return problems


def page_of(page, point):
    return page.evaluate(f"([c, r]) => {HOOK}.pageOf(c, r)", list(point))


def click(page, point):
    page.mouse.click(*page_of(page, point))


def drag(page, start, end):
    page.mouse.move(*page_of(page, start))
    page.mouse.down()
    x, y = page_of(page, end)
    page.mouse.move(x, y, steps=8)
    page.mouse.up()


# The red of the canvas's pixel under a page point: where the hook says an image pixel is must be
# where the viewport drew it.
CANVAS_RED_AT = """([x, y]) => {
  const canvas = document.querySelector('#viewer canvas');
  const rect = canvas.getBoundingClientRect();
  const scale = canvas.width / rect.width;
  const px = Math.floor((x - rect.left) * scale), py = Math.floor((y - rect.top) * scale);
  return canvas.getContext('2d').getImageData(px, py, 1, 1).data[0];
}"""


def red_at(page, point):
    return page.evaluate(CANVAS_RED_AT, page_of(page, point))


def prompt(page):
    return page.inner_text("#vettools-prompt")


def results(page, tool):
    return [r for r in page.evaluate(f"() => {HOOK}.results()") if r["toolName"] == tool]


def wait_prompt(page, text):
    try:
        page.wait_for_function(
            "(text) => document.querySelector('#vettools-prompt').textContent.includes(text)", arg=text
        )
    except PlaywrightTimeoutError:
        raise AssertionError(f"{text!r} awaited, {prompt(page)!r} shown") from None


@pytest.fixture
def thorax_study(reference_data, ingest):  # noqa: F811
    study = generate_uid()
    ingest(image(study, thorax, PatientSpeciesDescription="Canine"))
    return Study.objects.get(study_instance_uid=study)


def test_vhs_and_vlas_guided_on_a_thorax(thorax_study, staff, live_server, page):  # noqa: F811
    problems = open_viewer(page, live_server, thorax_study)
    page.click("#vettools [data-tool=VetVHS]")
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "VetVHS"
    assert "ventral border of the carina" in prompt(page)
    click(page, CARINA)
    wait_prompt(page, "cardiac apex")
    click(page, APEX)
    wait_prompt(page, "widest")
    for point in SHORT:
        click(page, point)
    wait_prompt(page, "cranial edge of T4")
    click(page, MARKS[0])
    wait_prompt(page, "cranial edge of T5")
    for number, mark in enumerate(MARKS[1:-1], start=6):
        click(page, mark)
        wait_prompt(page, f"cranial edge of T{number}")
    page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-vhs-placing.png"))
    assert "5 marked, about 5.3 needed" in prompt(page)
    click(page, MARKS[-1])  # T10: six vertebrae cover the long axis
    wait_prompt(page, "VHS 9.5 v (long 5.3 + short 4.2)")
    assert "Dogs 9.7 ± 0.5" in prompt(page) and "Buchanan & Bücheler 1995" in prompt(page)
    [vhs] = results(page, "VetVHS")
    assert vhs["complete"] and vhs["points"] == 4 + len(MARKS)
    assert vhs["vetpacs"]["kind"] == "vhs" and vhs["vetpacs"]["unit"] == "{vertebrae}"
    assert abs(vhs["vetpacs"]["value"] - 9.5) <= 0.1, vhs
    assert vhs["vetpacs"]["text"] == "VHS 9.5 v (long 5.3 + short 4.2)"
    assert "/instances/" in vhs["referencedImageId"] and vhs["referencedImageId"].endswith("/frames/1")
    # Drawn on the image: the text box says it.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer svg text')].some((t) => t.textContent.includes('VHS 9.5'))"
    )
    page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-vhs.png"))

    # VLAS by its key: the VHS's vertebrae are taken, so two points make it (its first click is
    # on the VHS's carina handle, and starts the VLAS rather than moving the VHS).
    page.keyboard.press("j")
    wait_prompt(page, "VLAS: click the ventral border of the carina")
    click(page, CARINA)
    wait_prompt(page, "left atrium meets the dorsal border of the caudal vena cava")
    click(page, ATRIUM)
    wait_prompt(page, "VLAS 2.5 v")
    assert "≥ 2.3" in prompt(page) and "Malcolm et al. 2018" in prompt(page)
    [vlas] = results(page, "VetVLAS")
    assert vlas["points"] == 2 and abs(vlas["vetpacs"]["value"] - 2.5) <= 0.1, vlas
    assert results(page, "VetVHS")[0]["vetpacs"]["value"] == vhs["vetpacs"]["value"]  # not moved

    # Dragging handles (with the window tool on the left button): the apex 20 px further makes the
    # long axis 232 px; T6's mark 10 px cranially makes T4-T6 40 + 30 and T6 50: the VHS
    # 5.8 + 4.2 = 10.0, the VLAS (which shares the marks) 1 + 1 + 30/50 = 2.6.
    page.keyboard.press("w")
    drag(page, APEX, (APEX[0], APEX[1] + 20))
    wait_prompt(page, "VHS 10.0 v (long 5.8 + short 4.2)")
    drag(page, MARKS[2], (MARKS[2][0] - 10, MARKS[2][1]))
    page.wait_for_function(
        f"() => {HOOK}.results().some((r) => r.toolName === 'VetVLAS' && r.vetpacs.value === 2.6)"
    )
    assert results(page, "VetVHS")[0]["vetpacs"]["value"] == 10.0
    page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-vlas-dragged.png"))

    # Saved and restored as plain JSON without their results: drawn, and measured again the same.
    page.evaluate(f"() => {HOOK}.roundTrip()")
    page.wait_for_function(
        f"() => {HOOK}.results().filter((r) => r.vetpacs).map((r) => r.vetpacs.value).sort().join() === '10,2.6'"
    )
    assert {r["vetpacs"]["text"] for r in page.evaluate(f"() => {HOOK}.results()")} == {
        "VHS 10.0 v (long 5.8 + short 4.2)",
        "VLAS 2.6 v",
    }

    # At phone width the buttons and the prompt wrap above the image.
    page.set_viewport_size({"width": 375, "height": 800})
    page.keyboard.press("k")
    wait_prompt(page, "VHS: click the ventral border of the carina")
    assert page.locator("#vettools [data-tool=VetTPA]").bounding_box()["x"] + 40 < 375
    page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-375.png"))
    assert problems == [], problems


# The hips: two femoral heads of radius 50 px, centres (120, 200) and (280, 200); the rims.
HEADS = [(120, 200), (280, 200)]
RIMS = [(90, 150), (300, 140)]


def on_circle(centre, degrees, radius=50):
    return (
        centre[0] + radius * math.cos(math.radians(degrees)),
        centre[1] + radius * math.sin(math.radians(degrees)),
    )


def hips(pixels):
    rows, columns = numpy.mgrid[0:SIZE, 0:SIZE]
    for column, row in HEADS:
        ring = numpy.abs(numpy.hypot(columns - column, rows - row) - 50) < 1.5
        pixels[ring] = 800
    for rim in RIMS:
        dot(pixels, rim)


def angle_at(vertex, a, b):
    u = numpy.subtract(a, vertex)
    v = numpy.subtract(b, vertex)
    return math.degrees(math.acos(numpy.dot(u, v) / (numpy.linalg.norm(u) * numpy.linalg.norm(v))))


def test_norberg_angle_on_two_circles(reference_data, ingest, staff, live_server, page):  # noqa: F811
    study = generate_uid()
    # Rows run to the patient's left (PS3.3 C.7.6.1.1.1): the head on the image's left is the right.
    ingest(image(study, hips, PatientOrientation=["L", "F"]))
    problems = open_viewer(page, live_server, Study.objects.get(study_instance_uid=study))
    page.keyboard.press("n")
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "VetNorberg"
    for centre in HEADS:
        for degrees in (180, 250, 300):
            click(page, on_circle(centre, degrees))
    wait_prompt(page, "rim over the first femoral head")
    for rim in RIMS:
        click(page, rim)
    right = angle_at(HEADS[0], HEADS[1], RIMS[0])  # 120.96°
    left = angle_at(HEADS[1], HEADS[0], RIMS[1])  # 108.43°
    wait_prompt(page, "Norberg right")
    [norberg] = results(page, "VetNorberg")
    angles = {a["side"]: a["angle"] for a in norberg["vetpacs"]["angles"]}
    assert abs(angles["right"] - right) <= 1 and abs(angles["left"] - left) <= 1, (angles, right, left)
    assert norberg["vetpacs"]["value"] == min(angles.values()) and norberg["vetpacs"]["unit"] == "deg"
    assert f"right {angles['right']:.1f}°, left {angles['left']:.1f}°" in prompt(page)
    assert "≥ 105°" in prompt(page)
    page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-norberg.png"))
    assert problems == [], problems


# The stifle, on pixels twice as tall as wide (row spacing 0.5 mm, column spacing 0.25 mm): the
# angle is the one in millimetres, not in pixels.
PLATEAU = [(180, 110), (300, 90)]
EMINENCE, TALUS = (230, 100), (250, 360)
SPACING = (0.5, 0.25)  # Pixel Spacing: row spacing \ column spacing


def tpa_of(plateau, eminence, talus, spacing=SPACING):
    def mm(point):
        return numpy.array([point[0] * spacing[1], point[1] * spacing[0]])

    u = mm(plateau[1]) - mm(plateau[0])
    v = mm(talus) - mm(eminence)
    between = math.degrees(math.acos(abs(numpy.dot(u, v)) / (numpy.linalg.norm(u) * numpy.linalg.norm(v))))
    return 90 - between


def stifle(pixels):
    for point in (*PLATEAU, EMINENCE, TALUS):
        dot(pixels, point)


def test_tpa_on_known_lines_with_anisotropic_pixels(reference_data, ingest, staff, live_server, page):  # noqa: F811
    study = generate_uid()
    ingest(image(study, stifle, spacing=SPACING))
    problems = open_viewer(page, live_server, Study.objects.get(study_instance_uid=study))
    # The marks drawn in the image are where the page puts those pixels on the non-square grid
    # (and the ground between them dark).
    assert [red_at(page, point) for point in (*PLATEAU, EMINENCE, TALUS)] == [255] * 4
    assert red_at(page, (EMINENCE[0], EMINENCE[1] + 20)) == 0
    page.click("#vettools [data-tool=VetTPA]")
    wait_prompt(page, "cranial edge of the medial tibial plateau")
    for point in (*PLATEAU, EMINENCE, TALUS):
        click(page, point)
    expected = tpa_of(PLATEAU, EMINENCE, TALUS)
    in_pixels = tpa_of(PLATEAU, EMINENCE, TALUS, spacing=(1, 1))  # what ignoring the spacing gives
    assert abs(expected - in_pixels) > 3, (expected, in_pixels)
    wait_prompt(page, "TPA ")
    [tpa] = results(page, "VetTPA")
    assert abs(tpa["vetpacs"]["value"] - expected) <= 1, (tpa, expected)
    assert "25 mm ball" in prompt(page) and "Slocum & Slocum 1993" in prompt(page)
    page.screenshot(path=str(SCREENSHOTS / "viewer-vettools-tpa.png"))

    # Dragging the talus handle recomputes.
    page.keyboard.press("w")
    moved = (TALUS[0] + 60, TALUS[1])
    drag(page, TALUS, moved)
    expected_moved = tpa_of(PLATEAU, EMINENCE, moved)
    page.wait_for_function(
        f"(e) => {HOOK}.results().some((r) => r.toolName === 'VetTPA' && Math.abs(r.vetpacs.value - e) <= 1)",
        arg=expected_moved,
    )
    assert abs(expected_moved - expected) > 3
    wait_prompt(page, f"TPA {results(page, 'VetTPA')[0]['vetpacs']['value']:.1f}°")
    assert problems == [], problems


def test_vlas_alone_asks_for_the_vertebrae_and_esc_drops_an_unfinished_one(
    thorax_study, staff, live_server, page
):  # noqa: F811
    problems = open_viewer(page, live_server, thorax_study)
    # An unfinished VHS goes with Esc: nothing kept, the prompt emptied.
    page.keyboard.press("k")
    click(page, CARINA)
    wait_prompt(page, "cardiac apex")
    assert len(results(page, "VetVHS")) == 1
    page.keyboard.press("Escape")
    page.wait_for_function(f"() => {HOOK}.results().length === 0")
    assert prompt(page) == ""

    # Without a VHS on the image, VLAS asks for T4 and the vertebrae after it until 100 px are
    # covered: three vertebrae, four marks.
    page.keyboard.press("j")
    click(page, CARINA)
    wait_prompt(page, "left atrium")
    click(page, ATRIUM)
    wait_prompt(page, "cranial edge of T4")
    for number, mark in enumerate(MARKS[:3], start=5):
        click(page, mark)
        wait_prompt(page, f"cranial edge of T{number}")
    click(page, MARKS[3])
    wait_prompt(page, "VLAS 2.5 v")
    [vlas] = results(page, "VetVLAS")
    assert vlas["points"] == 2 + 4 and vlas["vetpacs"]["value"] == 2.5, vlas
    assert problems == [], problems


def test_the_vhs_of_a_cat_is_read_against_the_cats_range(reference_data, ingest, staff, live_server, page):  # noqa: F811
    study = generate_uid()
    ingest(image(study, thorax, PatientSpeciesDescription="Feline"))
    problems = open_viewer(page, live_server, Study.objects.get(study_instance_uid=study))
    page.keyboard.press("k")
    for count, point in enumerate((CARINA, APEX, *SHORT, *MARKS), start=1):
        click(page, point)
        # Taken before the next (Cornerstone takes a click soon after the last for a double click).
        page.wait_for_function(f"(n) => {HOOK}.results().some((r) => r.points === n)", arg=count)
    wait_prompt(page, "VHS 9.5 v")
    assert "Cats 7.5 ± 0.3" in prompt(page) and "Dogs" not in prompt(page)
    [vhs] = results(page, "VetVHS")
    assert vhs["vetpacs"]["reference"].startswith("Cats 7.5 ± 0.3"), vhs
    assert problems == [], problems
