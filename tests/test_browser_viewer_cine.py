"""The viewer's cine feature (viewer/src/cine.js and its modules) in headless Chromium: a
thirty-slice CT loaded progressively (the first image first, then all of it, data-loaded="all"),
its scroll bar, 1:1, fit and the magnifier, the orientation markers through flips and rotation,
the animal's age and weight; and an ultrasound loop (Frame Time 50 ms) played and paused at
its recorded 20 frames a second."""

import numpy
import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.data import get_testdata_file
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from imaging.models import Study
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import ct_slice
from tests.test_browser_viewer_display import wait_text
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 30
FRAMES = 12
CELL = "[data-cell='0']"
# Every value data-loaded-count takes on the first viewport, recorded from the page's start.
RECORD_LOADING = """
window.loadedCounts = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.target.id === 'viewer') window.loadedCounts.push(Number(change.target.dataset.loadedCount));
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-loaded-count'] });
"""
# The image's width on the canvas: the non-black run across the middle row (the letterbox is black).
IMAGE_WIDTH = """() => {
  const canvas = document.querySelector('#viewer canvas');
  const row = Math.floor(canvas.height / 2);
  const { data } = canvas.getContext('2d').getImageData(0, row, canvas.width, 1);
  let first = -1, last = -1;
  for (let x = 0; x < canvas.width; x += 1) {
    if (data[4 * x] > 0) { if (first < 0) first = x; last = x; }
  }
  return first < 0 ? 0 : last - first + 1;
}"""


@pytest.fixture
def ct_thirty(reference_data, ingest):  # noqa: F811
    """An axial CT (Image Orientation (Patient) 1\\0\\0\\0\\1\\0) of a four-year-old dog of 12.5 kg."""
    study, series = generate_uid(), generate_uid()
    slices = []
    for number in range(SLICES):
        ds, changes = ct_slice(study, series, number % 5)
        changes.update(InstanceNumber=number + 1, SOPInstanceUID=generate_uid())
        ds.ImagePositionPatient = [0, 0, 5 * number]
        changes.update(PatientAge="004Y", PatientWeight=12.5, Laterality="L", PatientName="Rex^Jones")
        slices.append((ds, changes))
    ingest(*slices)
    return Study.objects.get(study_instance_uid=study)


def us_loop(study, series):
    """An ultrasound loop of twelve 8-bit frames recorded 50 ms apart (Frame Time, PS3.3
    C.7.6.5), a bright bar moving down frame by frame; a quadruped's projection, its rows
    running cranially and its columns ventrally (Patient Orientation, C.7.6.1.1.1)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    size = 64
    pixels = numpy.full((FRAMES, size, size), 30, dtype=numpy.uint8)
    for frame in range(FRAMES):
        pixels[frame, 4 * frame : 4 * frame + 8, 8:56] = 230
    for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "SliceLocation", "RescaleSlope",
                    "RescaleIntercept", "RescaleType", "PatientAge", "PatientWeight"):  # fmt: skip
        if keyword in ds:
            delattr(ds, keyword)
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 128, 256
    ds.NumberOfFrames = FRAMES
    ds.FrameTime = 50
    ds.FrameIncrementPointer = Tag(0x0018, 0x1063)
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OB"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    changes = uids(
        study, series, Modality="US", InstanceNumber=1, SeriesNumber=1, PatientName="Tibbles^Moore",
        PatientBirthDate="20250601", StudyDate="20261201", AnatomicalOrientationType="QUADRUPED",
        PatientOrientation=["CR", "V"],
    )  # fmt: skip
    return ds, changes


@pytest.fixture
def us_study(reference_data, ingest):  # noqa: F811
    study = generate_uid()
    ingest(us_loop(study, generate_uid()))
    return Study.objects.get(study_instance_uid=study)


def open_viewer(page, live_server, study):
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "viewer-cine-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None
    return problems


def markers(page):
    return {
        edge: page.inner_text(f"{CELL} .viewer-marker.{edge}") for edge in ("top", "right", "bottom", "left")
    }


def wait_markers(page, expected):
    try:
        page.wait_for_function(
            """(expected) => Object.entries(expected).every(([edge, text]) =>
                 document.querySelector(`[data-cell='0'] .viewer-marker.${edge}`).textContent === text)""",
            arg=expected,
        )
    except PlaywrightTimeoutError:
        raise AssertionError((expected, markers(page))) from None


def number(page, attribute):
    return float(page.get_attribute("#viewer", attribute))


def test_a_ct_loads_whole_scrolls_by_its_bar_and_shows_its_orientation(ct_thirty, staff, live_server, page):  # noqa: F811
    page.add_init_script(RECORD_LOADING)
    problems = open_viewer(page, live_server, ct_thirty)

    # Progressive loading: the first image alone, then the rest, until all thirty are cached.
    page.wait_for_selector("#viewer[data-loaded=all]")
    assert page.get_attribute("#viewer", "data-loaded-count") == str(SLICES)
    counts = page.evaluate("window.loadedCounts")
    assert counts[0] == 1 and counts[-1] == SLICES, counts
    assert counts == sorted(counts) and len(set(counts)) >= 10, counts
    assert page.is_hidden(f"{CELL} .viewer-loading")

    # The overlay: age and weight from the headers, the series' laterality.
    wait_text(page, f"{CELL} .viewer-corner.tl", "Age 4 y, 12.5 kg")
    assert "Laterality L (left)" in page.inner_text(f"{CELL} .viewer-corner.tr")

    # An axial slice seen from the feet (PS3.3 C.7.6.2.1.1, rows to the patient's left, columns
    # to posterior): the patient's left on the viewer's right, anterior at the top.
    wait_markers(page, {"top": "A", "right": "L", "bottom": "P", "left": "R"})
    page.focus("#viewer")
    page.keyboard.press("h")
    wait_markers(page, {"top": "A", "right": "R", "bottom": "P", "left": "L"})
    page.keyboard.press("h")
    page.keyboard.press("r")  # a quarter turn clockwise: what was at the top is on the right
    wait_markers(page, {"top": "R", "right": "A", "bottom": "L", "left": "P"})
    page.keyboard.press("Escape")
    wait_markers(page, {"top": "A", "right": "L", "bottom": "P", "left": "R"})

    # The scroll bar: shows the place, and a drag on it goes to the slice under the pointer.
    bar = page.locator(f"{CELL} .viewer-scroll")
    assert bar.get_attribute("aria-valuenow") == "1" and bar.get_attribute("aria-valuemax") == str(SLICES)
    box = bar.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 10 / (SLICES - 1), steps=5)
    page.mouse.move(x, box["y"] + box["height"] * 20 / (SLICES - 1), steps=5)
    page.mouse.up()
    page.wait_for_selector("#viewer[data-overlay-index='20']")
    assert bar.get_attribute("aria-valuenow") == "21"
    wait_text(page, f"{CELL} .viewer-corner.bl", f"Im 21/{SLICES}")
    thumb = page.locator(f"{CELL} .viewer-scroll-thumb").bounding_box()
    assert box["y"] + box["height"] * 0.55 < thumb["y"] < box["y"] + box["height"] * 0.75, (box, thumb)
    page.screenshot(path=str(SCREENSHOTS / "viewer-cine-ct-1280.png"))

    # 1:1: one image pixel on one screen pixel, so the 128-pixel-wide image is 128 pixels wide.
    fitted = number(page, "data-pixel-scale")
    assert fitted > 2, fitted  # the fitted image is bigger than its pixels
    page.keyboard.press("=")
    page.wait_for_function(
        "() => Math.abs(Number(document.querySelector('#viewer').dataset.pixelScale) - 1) < 0.01"
    )
    page.wait_for_function(f"() => Math.abs(({IMAGE_WIDTH})() - 128) <= 2")
    page.keyboard.press("9")  # fit again
    page.wait_for_function(
        f"() => Math.abs(Number(document.querySelector('#viewer').dataset.pixelScale) - {fitted}) < 0.01"
    )

    # The magnifier on the left drag: a magnified copy under the pointer while the button is down.
    page.click("#viewer-toolbar [data-cine-action='magnify']")
    assert page.get_attribute("#viewer-grid", "data-primary-tool") == "Magnify"
    assert page.get_attribute("#viewer-toolbar [data-tool='Magnify']", "aria-pressed") == "true"
    image = page.locator("#viewer").bounding_box()
    page.mouse.move(image["x"] + image["width"] / 2, image["y"] + image["height"] / 2)
    page.mouse.down()
    page.wait_for_selector("#viewer .magnifyTool", state="visible")
    page.screenshot(path=str(SCREENSHOTS / "viewer-cine-magnify-1280.png"))
    page.mouse.up()

    # A second viewport gets its own scroll bar and loads its series whole too.
    page.keyboard.press("2")
    page.wait_for_selector("[data-cell='1'] .viewer[data-loaded=all]")
    assert page.get_attribute("[data-cell='1'] .viewer", "data-loaded-count") == str(SLICES)
    assert page.get_attribute("[data-cell='1'] .viewer-scroll", "aria-valuemax") == str(SLICES)
    page.screenshot(path=str(SCREENSHOTS / "viewer-cine-1x2-1280.png"))
    assert problems == [], problems


def test_an_ultrasound_loop_plays_at_its_recorded_rate_and_pauses(us_study, staff, live_server, page):  # noqa: F811
    problems = open_viewer(page, live_server, us_study)
    page.wait_for_selector("#viewer[data-loaded=all]")
    assert page.get_attribute("#viewer", "data-loaded-count") == str(FRAMES)
    # Age from the birth date on the study's day: eighteen months.
    wait_text(page, f"{CELL} .viewer-corner.tl", "Age 18 mo")
    # A quadruped's Patient Orientation: cranial along the rows, ventral down the columns.
    wait_markers(page, {"top": "D", "right": "CR", "bottom": "V", "left": "CD"})

    page.focus("#viewer")
    page.keyboard.press("?")  # the keys this feature adds are in the help
    help_text = page.inner_text("#viewer-help")
    assert "Space" in help_text and "1:1, one image pixel per screen pixel" in help_text, help_text
    page.screenshot(path=str(SCREENSHOTS / "viewer-cine-help-1280.png"))
    page.keyboard.press("?")
    page.keyboard.press(" ")
    page.wait_for_selector("#viewer[data-cine-playing=true]")
    # The rate read from the header: Frame Time 50 ms, 20 frames a second.
    assert page.get_attribute("#viewer", "data-cine-fps") == "20"
    assert page.get_attribute("#viewer", "data-cine-source") == "Frame Time"
    wait_text(page, f"{CELL} .viewer-corner.br", "Cine 20 fps")
    assert page.get_attribute("#viewer-cine-play", "aria-pressed") == "true"
    # Frames advance while it plays: counted in the page over an interval the page measures.
    start = page.evaluate(
        "() => [Number(document.querySelector('#viewer').dataset.cineFrames), performance.now()]"
    )
    page.wait_for_function(
        f"() => Number(document.querySelector('#viewer').dataset.cineFrames) >= {start[0] + 8}"
    )
    end = page.evaluate(
        "() => [Number(document.querySelector('#viewer').dataset.cineFrames), performance.now()]"
    )
    rate = (end[0] - start[0]) * 1000 / (end[1] - start[1])
    # Never faster than recorded (a slow machine may show fewer, which is not asserted).
    assert 0 < rate <= 20 * 1.25, (start, end, rate)
    page.wait_for_selector("#viewer[data-cine-achieved-fps]")
    assert 0 < number(page, "data-cine-achieved-fps") <= 25
    indices = set()
    for _ in range(4):
        indices.add(page.get_attribute("#viewer", "data-overlay-index"))
        page.wait_for_timeout(60)
    assert len(indices) >= 2, indices  # the shown frame changes
    page.screenshot(path=str(SCREENSHOTS / "viewer-cine-us-1280.png"))

    page.click("#viewer-cine-play")  # pause by the button
    page.wait_for_selector("#viewer[data-cine-playing=false]")
    paused = page.get_attribute("#viewer", "data-overlay-index")
    frames = page.get_attribute("#viewer", "data-cine-frames")
    page.wait_for_timeout(300)  # several frame times: nothing moves
    assert page.get_attribute("#viewer", "data-overlay-index") == paused
    assert page.get_attribute("#viewer", "data-cine-frames") == frames
    assert "Cine" not in page.inner_text(f"{CELL} .viewer-corner.br")
    # Space with the focus still on the button plays once (not the key and then the button).
    page.keyboard.press(" ")
    page.wait_for_selector("#viewer[data-cine-playing=true]")
    page.wait_for_timeout(200)
    assert page.get_attribute("#viewer", "data-cine-playing") == "true"
    assert page.get_attribute("#viewer-cine-play", "aria-pressed") == "true"
    assert problems == [], problems


# For each frame the first viewport shows, by whom it was drawn (Cornerstone's IMAGE_RENDERED, or
# the cine's cache: its vetpacs-cine-frame event) and, read off the canvas right then, where the
# loop's bright bar is (its centre row as a fraction of the image's height) and the background's
# grey (column 4, left of the bar, which spans columns 8-56 of 64).
RECORD_FRAMES = """
window.cineFrames = [];
function cineFrameRead(event, by) {
  const element = event.target;
  if (!element || element.id !== 'viewer') return;
  const canvas = element.querySelector('canvas');
  const context = canvas.getContext('2d');
  const middle = Math.floor(canvas.height / 2);
  const across = context.getImageData(0, middle, canvas.width, 1).data;
  let left = -1, right = -1;
  for (let x = 0; x < canvas.width; x += 1) if (across[4 * x] > 0) { if (left < 0) left = x; right = x; }
  const column = Math.floor((left + right) / 2);
  const down = context.getImageData(column, 0, 1, canvas.height).data;
  let top = -1, bottom = -1, bright = [];
  for (let y = 0; y < canvas.height; y += 1) {
    if (down[4 * y] > 0) { if (top < 0) top = y; bottom = y; }
    if (down[4 * y] > 150) bright.push(y);
  }
  const background = context.getImageData(left + Math.floor((4 * (right - left)) / 64), middle, 1, 1).data[0];
  const bar = bright.length ? (bright.reduce((a, b) => a + b, 0) / bright.length - top) / (bottom - top + 1) : null;
  const index = by === 'cache' ? event.detail.index : Number(element.dataset.imageIndex);
  window.cineFrames.push({ by, index, bar, background });
}
// After the page's own listeners (they set data-image-index), before anything draws again.
document.addEventListener('CORNERSTONE_IMAGE_RENDERED',
  (event) => queueMicrotask(() => cineFrameRead(event, 'cornerstone')), true);
document.addEventListener('vetpacs-cine-frame', (event) => cineFrameRead(event, 'cache'), true);
// How many frames had been shown when each key reached the page: on the window, in the capture
// phase, before the viewer's own handlers (on the document and the cells) act on it.
window.cineKeys = [];
window.addEventListener('keydown', (event) => window.cineKeys.push({ key: event.key, at: window.cineFrames.length }), true);
"""


def test_the_cine_plays_a_drawn_loop_from_its_frame_cache_until_the_window_changes(
    us_study, staff, live_server, page
):  # noqa: F811
    page.add_init_script(RECORD_FRAMES)
    problems = open_viewer(page, live_server, us_study)
    page.wait_for_selector("#viewer[data-loaded=all]")
    page.focus("#viewer")
    page.keyboard.press(" ")
    # The first loop through Cornerstone, each frame it draws kept; then the loop from the cache.
    page.wait_for_selector("#viewer[data-cine-path=cache]")
    assert page.get_attribute("#viewer", "data-cine-cached") == str(FRAMES)
    page.wait_for_function(f"() => window.cineFrames.filter((f) => f.by === 'cache').length >= {FRAMES + 4}")
    frames = page.evaluate("window.cineFrames")
    drawn = [f for f in frames if f["by"] == "cornerstone" and f["bar"] is not None]
    cached = [f for f in frames if f["by"] == "cache"]
    # Cornerstone drew nothing once the cache took over: every frame since came from the cache.
    last_cornerstone = max(i for i, f in enumerate(frames) if f["by"] == "cornerstone")
    assert all(f["by"] == "cache" for f in frames[last_cornerstone + 1 :])
    assert len({f["index"] for f in cached}) >= FRAMES // 2, cached  # the loop goes round
    # Each cached frame is the frame it says, where Cornerstone drew it: the bar 4 rows lower a frame.
    where = {f["index"]: f["bar"] for f in drawn}
    for frame in cached:
        assert frame["bar"] is not None, frame
        assert abs(frame["bar"] - (4 * frame["index"] + 4) / 64) < 0.05, frame
        if frame["index"] in where:
            assert abs(frame["bar"] - where[frame["index"]]) < 0.03, (frame, where[frame["index"]])
    # The overlay and the achieved rate follow the cached frames.
    wait_text(page, f"{CELL} .viewer-corner.br", "Cine 20 fps")
    page.wait_for_selector("#viewer[data-cine-achieved-fps]")
    assert 0 < number(page, "data-cine-achieved-fps") <= 25
    indices = set()
    for _ in range(4):
        indices.add(page.get_attribute("#viewer", "data-overlay-index"))
        page.wait_for_timeout(60)
    assert len(indices) >= 2, indices
    assert all(f["background"] < 100 for f in cached), cached

    # Invert: the cached frames are not the image as it is now shown. Cornerstone draws a loop
    # again, inverted, and the cache then plays that.
    # Counted from the moment the key reached the page: a cached frame drawn while the key was on
    # its way shows the image as it was, and rightly.
    page.keyboard.press("i")
    page.wait_for_function("() => window.cineKeys.some((k) => k.key === 'i')")
    seen = page.evaluate("window.cineKeys.find((k) => k.key === 'i').at")
    page.wait_for_function(
        f"""() => window.cineFrames.slice({seen}).some((f) => f.by === 'cornerstone')
             && document.querySelector('#viewer').dataset.cinePath === 'cache'"""
    )
    page.wait_for_function(
        f"() => window.cineFrames.slice({seen}).filter((f) => f.by === 'cache').length >= 4"
    )
    after = page.evaluate(f"window.cineFrames.slice({seen})")
    inverted = [f for f in after if f["by"] == "cache"]
    assert all(f["background"] > 150 for f in inverted), inverted
    page.screenshot(path=str(SCREENSHOTS / "viewer-cine-cached-inverted-1280.png"))

    # Paused: Cornerstone draws the frame last shown, and nothing moves.
    page.keyboard.press(" ")
    page.wait_for_selector("#viewer[data-cine-playing=false][data-cine-path=render]")
    paused = page.get_attribute("#viewer", "data-overlay-index")
    page.wait_for_function(f"() => document.querySelector('#viewer').dataset.imageIndex === '{paused}'")
    page.wait_for_timeout(300)
    assert page.get_attribute("#viewer", "data-overlay-index") == paused
    assert problems == [], problems


def test_a_ct_stack_plays_from_the_frame_cache_though_its_camera_moves_slice_by_slice(
    ct_thirty, staff, live_server, page
):  # noqa: F811
    # A stack's camera goes to each slice's plane: the cache keys frames by the view relative to
    # the image, so the thirty slices, each at its own position, make one cached loop.
    page.add_init_script(RECORD_FRAMES)
    problems = open_viewer(page, live_server, ct_thirty)
    page.wait_for_selector("#viewer[data-loaded=all]")
    page.focus("#viewer")
    page.keyboard.press(" ")
    page.wait_for_selector("#viewer[data-cine-path=cache]", timeout=60_000)
    assert page.get_attribute("#viewer", "data-cine-cached") == str(SLICES)
    page.wait_for_function("() => window.cineFrames.filter((f) => f.by === 'cache').length >= 5")
    assert page.get_attribute("#viewer", "data-cine-path") == "cache"
    page.keyboard.press(" ")
    page.wait_for_selector("#viewer[data-cine-playing=false]")
    assert problems == [], problems
