"""The study page's export links in a real browser: the ZIP downloads and reads back, the signed
report's PDF downloads; the links fit a phone's width."""

import io
import zipfile

import pytest
from django.urls import reverse
from pydicom.uid import generate_uid

from imaging.models import Study
from imaging.reports.services import report_finalize
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_study_page_downloads_the_zip_and_the_report_pdf(
    reference_data, ingest, staff, live_server, page
):  # noqa: F811
    study_uid, series_uid = generate_uid(), generate_uid()
    ingest(*(ct_slice(study_uid, series_uid, number) for number in range(2)))
    study = Study.objects.get(study_instance_uid=study_uid)
    report_finalize(
        actor=Actor.for_user(staff["veterinarian"]), study=study, findings="Normal thorax.", conclusion=""
    )
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_detail", args=[study.pk]))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "export-study-page.png"))
    with page.expect_download() as zipped:
        page.click("text=Download images (ZIP with DICOMDIR)")
    archive = zipfile.ZipFile(io.BytesIO(open(zipped.value.path(), "rb").read()))
    assert "DICOMDIR" in archive.namelist() and "README.TXT" in archive.namelist()
    assert sum(name.startswith("PT") for name in archive.namelist()) == 2
    with page.expect_download() as pdf:
        page.click("text=Report PDF")
    assert open(pdf.value.path(), "rb").read().startswith(b"%PDF-")
    page.set_viewport_size({"width": 375, "height": 812})
    links = page.locator(".export-links")
    links.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "export-study-page-375.png"))
    box = links.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 375
