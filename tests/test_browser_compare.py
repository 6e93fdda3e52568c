"""Comparing in the viewer (viewer/src/compare.js, compare_sync.js) in headless Chromium: the
animal's other studies in the side panel, "Compare" hanging the prior beside the current series
with scrolling and window/level linked, the toggle that unlinks them, and a thorax three-view
hung by the seeded protocol. The images are real DICOM read from our own WADO-RS."""

import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.uid import generate_uid

from imaging.models import HangingProtocol, HangingViewport, Study
from imaging.studies.hanging_seeds import hanging_protocols_load
from tests.test_browser_orders import NARROW, SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import ct_slice
from tests.test_browser_viewer_display import bar_slice
from tests.test_compare import radiograph
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A viewport's canvas as numbers: its mean grey level and a checksum of its pixels.
CELL_STATS = """(cell) => {
  const canvas = document.querySelector(`[data-cell='${cell}'] canvas`);
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0, checksum = 0;
  for (let i = 0; i < data.length; i += 4) {
    sum += data[i];
    checksum = (checksum * 31 + data[i] + data[i + 1] * 7 + data[i + 2] * 13) % 2147483647;
  }
  return { mean: sum / (data.length / 4), checksum };
}"""


@pytest.fixture
def seeded(reference_data):
    hanging_protocols_load(HangingProtocol, HangingViewport)


def linked_to(uid, patient):
    Study.objects.filter(study_instance_uid=uid).update(patient=patient, link=Study.Link.MANUAL)
    return Study.objects.get(study_instance_uid=uid)


def cell_text(page, cell, part):
    return page.inner_text(f"[data-cell='{cell}'] {part}")


def wait(page, condition, arg=None, what=""):
    try:
        page.wait_for_function(condition, arg=arg)
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "compare-failed.png"))
        raise AssertionError(f"{what or condition}: {page.inner_text('main')[:2000]}") from None


def viewer_open(page, live_server, study, problems):
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "radiologist")
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    page.wait_for_selector("#viewer[data-state=rendered][data-overlay-index='0']")


def test_compare_with_a_prior_scrolls_and_windows_both(
    seeded, ingest, make_patient, staff, live_server, page
):  # noqa: F811
    biscuit = make_patient("Biscuit", patient_id="P000001")
    today, today_series = generate_uid(), generate_uid()
    prior, prior_series = generate_uid(), generate_uid()
    ingest(
        *(
            (ds, {**changes, "StudyDate": "20261201"})
            for ds, changes in (ct_slice(today, today_series, n) for n in range(5))
        )
    )
    slices = []
    for n in range(5):
        ds, changes = bar_slice(prior, prior_series, n)
        slices.append((ds, {**changes, "StudyDate": "20250302", "SeriesNumber": 1, "SeriesDescription": ""}))
    ingest(*slices)
    study = linked_to(today, biscuit)
    linked_to(prior, biscuit)
    problems: list[str] = []
    viewer_open(page, live_server, study, problems)

    # The panel: the prior, with its date, modality and counts.
    page.wait_for_selector("#compare-priors li")
    assert page.locator("#compare-priors li").count() == 1
    entry = page.inner_text("#compare-priors li")
    assert "2025-03-02 · CT" in entry and "1 series, 5 images · unread" in entry, entry

    page.click("#compare-priors li .compare-button")
    wait(page, "() => document.querySelectorAll('#viewer-grid canvas').length === 2", what="two viewports")
    page.wait_for_selector(
        f"[data-cell='1'] .viewer[data-series-uid='{prior_series}'][data-overlay-index='0']"
    )
    wait(
        page,
        "() => document.querySelector('#compare-link').getAttribute('aria-pressed') === 'true'",
        what="linked",
    )
    assert page.get_attribute("[data-cell='0'] .viewer", "data-series-uid") == today_series
    assert cell_text(page, 1, ".viewer-label") == "Prior 2025-03-02"
    assert cell_text(page, 0, ".viewer-label") == "Current"
    assert page.inner_text("#compare-priors li[aria-current='true']").startswith("2025-03-02")
    # Both show images, different ones (the prior's bars, the current squares).
    page.wait_for_timeout(300)  # the first renders settled (no timing asserted)
    current, before = page.evaluate(CELL_STATS, 0), page.evaluate(CELL_STATS, 1)
    assert current["mean"] > 0 and before["mean"] > 0, (current, before)
    assert current["checksum"] != before["checksum"]

    # Scrolling the current study scrolls the prior with it.
    page.focus("#viewer")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("[data-cell='1'] .viewer[data-overlay-index='1']")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("[data-cell='1'] .viewer[data-overlay-index='2']")
    assert page.get_attribute("#viewer", "data-overlay-index") == "2"
    assert "Im 3/5" in cell_text(page, 1, ".viewer-corner.bl")
    page.wait_for_timeout(200)
    scrolled = page.evaluate(CELL_STATS, 1)
    assert scrolled["checksum"] != before["checksum"]

    # Window/level dragged on the current study changes the prior's picture too: CT to CT, the
    # same window in Hounsfield units.
    box = page.locator("[data-cell='0']").bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.down()
    page.mouse.move(middle[0] + 150, middle[1] + 100, steps=10)
    page.mouse.up()
    wait(
        page,
        "() => !document.querySelector(\"[data-cell='1'] .viewer-corner.br\").textContent.includes('W 800 L 300')",
        what="the prior's window changed",
    )
    assert cell_text(page, 1, ".viewer-corner.br") == cell_text(page, 0, ".viewer-corner.br")
    page.wait_for_timeout(200)
    windowed = page.evaluate(CELL_STATS, 1)
    assert windowed["checksum"] != scrolled["checksum"], (scrolled, windowed)
    # Zoom on the current study (Ctrl+wheel) zooms the prior: its picture changes again.
    page.mouse.move(*middle)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -240)
    page.keyboard.up("Control")
    wait(page, f"() => ({CELL_STATS})(1).checksum !== {windowed['checksum']}", what="the prior zoomed")
    page.screenshot(path=str(SCREENSHOTS / "compare-linked.png"))

    # Unlinked: the current study scrolls alone.
    page.click("#compare-link")
    assert page.get_attribute("#compare-link", "aria-pressed") == "false"
    page.focus("#viewer")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#viewer[data-overlay-index='3']")
    page.wait_for_timeout(300)
    assert page.get_attribute("[data-cell='1'] .viewer", "data-overlay-index") == "2"
    assert problems == [], problems

    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "compare-narrow.png"), full_page=True)


def test_a_thorax_three_view_hangs_by_the_seeded_protocol_and_compares_view_by_view(
    seeded,
    ingest,
    make_patient,
    staff,
    live_server,
    page,  # noqa: F811
):
    biscuit = make_patient("Biscuit", patient_id="P000001")
    today = generate_uid()
    series = {"RL": generate_uid(), "LL": generate_uid(), "VD": generate_uid()}
    # Sent VD, LL, RL: the strip and the first viewport would show the VD first.
    ingest(
        radiograph(today, series["VD"], view="VD", description="Thorax VD", number=1, shape="middle"),
        radiograph(today, series["LL"], view="LL", description="Thorax L lat", number=2, shape="right"),
        radiograph(today, series["RL"], view="RL", description="Thorax R lat", number=3, shape="left"),
    )
    prior = generate_uid()
    before = {"VD": generate_uid(), "RL": generate_uid()}
    ingest(
        radiograph(prior, before["VD"], description="Thorax ventrodorsal", number=1, study_date="20250302",
                   shape="middle"),
        radiograph(prior, before["RL"], description="Thorax right lateral", number=2, study_date="20250302",
                   shape="left"),
    )  # fmt: skip
    study = linked_to(today, biscuit)
    linked_to(prior, biscuit)
    problems: list[str] = []
    viewer_open(page, live_server, study, problems)

    wait(page, "() => document.querySelector('#viewer-grid').dataset.layout === '2x2'", what="2x2")
    assert page.get_attribute("#viewer-grid", "data-hanging-protocol") == "Thorax three views (DX)"
    for cell, view in enumerate(("RL", "LL", "VD")):
        page.wait_for_selector(
            f"[data-cell='{cell}'] .viewer[data-series-uid='{series[view]}'][data-overlay-index='0']"
        )
    labels = [cell_text(page, cell, ".viewer-label") for cell in range(3)]
    assert labels == ["Right lateral", "Left lateral", "VD"]
    assert "Se 3 Thorax R lat" in cell_text(page, 0, ".viewer-corner.bl")
    page.wait_for_timeout(300)
    # The right lateral's bar is on the left, the left lateral's on the right.
    assert page.evaluate(CELL_STATS, 0)["checksum"] != page.evaluate(CELL_STATS, 1)["checksum"]
    page.screenshot(path=str(SCREENSHOTS / "compare-thorax-hung.png"))

    # Compare from the right lateral: the prior's right lateral (named in words) beside it.
    page.click("[data-cell='0']")
    page.click("#compare-priors li .compare-button")
    wait(page, "() => document.querySelectorAll('#viewer-grid canvas').length === 2", what="two viewports")
    page.wait_for_selector(
        f"[data-cell='1'] .viewer[data-series-uid='{before['RL']}'][data-overlay-index='0']"
    )
    assert page.get_attribute("[data-cell='0'] .viewer", "data-series-uid") == series["RL"]
    wait(
        page,
        "() => document.querySelector('#compare-link').getAttribute('aria-pressed') === 'true'",
        what="linked",
    )
    page.wait_for_timeout(300)
    plain = page.evaluate(CELL_STATS, 1)
    # Radiographs: the prior's window moves by the same proportion of its own.
    box = page.locator("[data-cell='0']").bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.down()
    page.mouse.move(middle[0] + 120, middle[1] + 60, steps=8)
    page.mouse.up()
    wait(page, f"() => ({CELL_STATS})(1).checksum !== {plain['checksum']}", what="the prior windowed")
    assert cell_text(page, 1, ".viewer-corner.br") != "W 1000 L 500"
    page.screenshot(path=str(SCREENSHOTS / "compare-thorax-prior.png"))
    assert problems == [], problems
