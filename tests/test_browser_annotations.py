"""Annotations in the viewer (viewer/src/annotations.js) in headless Chromium: a length drawn
with Cornerstone's LengthTool, a key image flagged, saved, back after a reload (in annotation.state
and drawn), exported as a DICOM SR carrying the measured value; the animal's VHS history beside it."""

from datetime import date

import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.uid import generate_uid

from imaging.annotations.services import annotation_save
from imaging.archive.tasks import metadata_keep_task  # noqa: F401  (the ingest fixture's)
from imaging.ingest.index import storage_sweep
from imaging.models import AnnotationVersion, Instance, Study
from tests.test_annotations import mark, study_with_image
from tests.test_annotations_export import content_items
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)
from vetclinic.audit.services import Actor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PANEL = "#viewer-annotations"
# The drawn lengths: each annotation's SVG line in the active viewport, as its end points.
LINES = """() => [...document.querySelectorAll('#viewer svg line')].map(
  (l) => [l.x1.baseVal.value, l.y1.baseVal.value, l.x2.baseVal.value, l.y2.baseVal.value].map(Math.round))"""


def wait_text(page, selector, text):
    try:
        page.wait_for_function(
            "([selector, text]) => (document.querySelector(selector)?.textContent || '').includes(text)",
            arg=[selector, text],
        )
    except PlaywrightTimeoutError:
        shown = page.evaluate("(s) => document.querySelector(s)?.textContent", selector)
        raise AssertionError(f"{selector}: {text!r} awaited, {shown!r} shown") from None


@pytest.fixture
def bella_study(reference_data, ingest, make_patient, staff):  # noqa: F811
    """A CT study of Bella's (five slices) and an earlier study of hers with a VHS saved."""
    study_uid, series_uid = generate_uid(), generate_uid()
    ingest(*(ct_slice(study_uid, series_uid, number) for number in range(5)))
    bella = make_patient("Bella", patient_id="P-100")
    Study.objects.filter(study_instance_uid=study_uid).update(patient=bella, study_date=date(2026, 11, 2))
    earlier, s, i = study_with_image(bella, date(2025, 3, 1))
    annotation_save(actor=Actor.for_user(staff["radiologist"]), study=earlier, version=0, key_images=[],
                    annotations=[mark(earlier, s, i, kind="vhs", value=9.8, unit="{vertebrae}", text="VHS 9.8 v")])  # fmt: skip
    return Study.objects.get(study_instance_uid=study_uid)


def open_viewer(page, live_server, study):
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered]")
        page.wait_for_selector(f"{PANEL}[data-state=saved]")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "annotations-failed.png"))
        raise AssertionError(page.inner_text("main")) from None


def test_a_length_is_saved_comes_back_after_a_reload_and_is_exported_as_an_sr(
    bella_study, staff, live_server, page, storage_root
):
    study = bella_study
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, live_server, "veterinarian")
    open_viewer(page, live_server, study)
    assert page.inner_text(f"{PANEL} [data-part=status]") == "Nothing saved for this study yet."
    # The animal's earlier VHS, found through its record.
    wait_text(page, f"{PANEL} [data-part=history]", "VHS 9.8 v")
    assert "2025-03-01" in page.inner_text(f"{PANEL} [data-part=history] tbody")

    page.evaluate(f"() => document.querySelector('{PANEL}').viewerApi.primaryToolSet('Length')")
    box = page.locator("#viewer").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 80, y)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(x - 80 + 20 * step, y + 5 * step)
    page.mouse.up()
    page.wait_for_selector(f"{PANEL}[data-count='1']")
    drawn = page.evaluate(LINES)
    assert len(drawn) >= 1, drawn
    listed = page.inner_text(f"{PANEL} [data-part=list]")
    assert "Length" in listed and "mm" in listed and "not saved yet" in listed

    page.focus("#viewer")
    page.keyboard.press("f")
    assert page.get_attribute(f"{PANEL} [data-part=key]", "aria-pressed") == "true"
    page.keyboard.press("Control+s")
    wait_text(page, f"{PANEL} [data-part=status]", "Saved v1 by Veterinarian at ")
    saved = AnnotationVersion.objects.get(annotation_set__study=study)
    (length,) = saved.annotations
    result = length["data"]["vetpacs"]
    assert (result["kind"], result["unit"]) == ("length", "mm") and result["value"] > 10, result
    sop = Instance.objects.get(series__study=study, instance_number=1).sop_instance_uid
    assert [(k["sopInstanceUid"], k["frame"]) for k in saved.key_images] == [(sop, 1)]
    page.screenshot(path=str(SCREENSHOTS / "annotations-saved.png"))

    # A colleague opening the study: the length is back, drawn where it was, with who drew it.
    page.context.clear_cookies()
    log_in(page, live_server, "radiologist")
    open_viewer(page, live_server, study)
    wait_text(page, f"{PANEL} [data-part=status]", "Saved v1 by Veterinarian at ")
    page.wait_for_selector(f"{PANEL}[data-count='1']")
    page.wait_for_function(f"() => ({LINES})().length >= 1")
    again = page.evaluate(LINES)
    assert again == drawn, (drawn, again)
    assert "Length" in page.inner_text(f"{PANEL} [data-part=list]")
    assert "— Veterinarian" in page.inner_text(f"{PANEL} [data-part=list]")
    assert page.evaluate(f"() => document.querySelector('{PANEL}').viewerApi.measurements()") == [
        {
            "text": result["text"],
            "kind": "length",
            "value": result["value"],
            "unit": "mm",
            "author": "Veterinarian",
        }
    ]
    assert page.get_attribute(f"{PANEL} [data-part=key]", "aria-pressed") == "true"

    page.click(f"{PANEL} [data-part=export]")
    wait_text(page, f"{PANEL} [data-part=status]", "v1 exported as DICOM SR ")
    sr_uid = page.get_attribute(PANEL, "data-sr-uid")
    assert sr_uid == AnnotationVersion.objects.get(pk=saved.pk).sr_sop_instance_uid
    storage_sweep(days=1, min_age_seconds=0)  # index what was stored (no worker runs here)
    sr = Instance.objects.get(sop_instance_uid=sr_uid)
    from io import BytesIO

    import pydicom

    from imaging.ingest import storage

    ds = pydicom.dcmread(BytesIO(storage.object_get(sr.storage_key)))
    (number,) = [item for item in content_items(ds) if item.ValueType == "NUM"]
    assert float(number.MeasuredValueSequence[0].NumericValue) == pytest.approx(result["value"])
    assert sr.series.study_id == study.pk
    page.screenshot(path=str(SCREENSHOTS / "annotations-exported.png"))
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(SCREENSHOTS / "annotations-375.png"), full_page=True)
    assert not problems, problems
