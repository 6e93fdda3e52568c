"""The report panel's one-click inserts with real marks (issue 16): a length drawn with the
measuring tool and an image flagged as key reach the findings, as the vet sees them."""

import pytest
from pydicom.uid import generate_uid

from imaging.models import Procedure, ReportTemplate
from imaging.reports.template_texts import templates_load
from patients.models import Species
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer_measure import Image, drag, open_viewer, radiograph, wait_results
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FINDINGS = "#viewer-report textarea[name=findings]"


def inserted(page, count):
    page.wait_for_selector(f"#viewer-report-inserted[data-inserted='{count}']")
    return page.input_value(FINDINGS)


def test_a_length_and_a_key_image_go_into_the_findings_with_one_click(
    reference_data,
    ingest,
    staff,
    live_server,
    page,  # noqa: F811
):
    templates_load(ReportTemplate, Procedure, Species)
    study, series = generate_uid(), generate_uid()
    ingest(radiograph(study, series, 0, PixelSpacing=[0.5, 0.5]))
    problems = open_viewer(page, live_server, study)
    image = Image(page, (400, 400))
    marks, middle = image.geometry["marks"], image.geometry["middle"]

    page.click("#viewer-report [data-report-do=measurements]")
    assert inserted(page, 0) == "" and "No measurements yet" in page.inner_text("#viewer-report-inserted")

    page.focus("#viewer")
    page.keyboard.press("l")
    drag(page, (marks[0], middle), (marks[1], middle))
    [(value, unit, text)] = wait_results(page, "length", 1)
    page.keyboard.press("f")  # the shown image is a key image
    page.wait_for_selector("#viewer-annotations [data-part=key][aria-pressed=true]")

    page.fill(FINDINGS, "Cardiac silhouette: ")
    page.click("#viewer-report [data-report-do=measurements]")
    findings = inserted(page, 1)
    assert findings.startswith("Cardiac silhouette: ") and text in findings, (text, findings)
    page.click("#viewer-report [data-report-do=key-images]")
    findings = inserted(page, 1)
    assert "Key image: series 2 image 1" in findings, findings
    assert abs(value - 100) <= 1 and unit == "mm"
    page.screenshot(path=str(SCREENSHOTS / "report-insert.png"))
    assert problems == [], problems
