"""The reading list in headless Chromium: opened with every optional field empty, filtered by
report status from the form, a study opened in the viewer, and read at phone width (375 px)
without the page growing wider than the screen."""

import pytest
from django.urls import reverse

from imaging.models import Report, Series, Study
from tests.conftest import CLINIC_TODAY
from tests.test_browser_orders import _fits, browser, clinic, log_in, page, shot  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 812}


def _study(n, patient, *, report=None, **fields):
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.10.2.{n}", patient=patient, link=Study.Link.MANUAL,
        study_date=CLINIC_TODAY, accession_number=f"ACC{n}", **fields,
    )  # fmt: skip
    Series.objects.create(study=study, series_instance_uid=f"{study.study_instance_uid}.1", modality="DX",
                          received_from="DRROOM")  # fmt: skip
    if report:
        Report.objects.create(study=study, status=report)
    return study


def test_the_reading_list_filters_and_opens_a_study_and_fits_a_phone(clinic, staff, live_server, page):  # noqa: F811
    unread = _study(1, clinic, description="Thorax 2 views", referring_physician="Jones^Anna")
    signed = _study(2, clinic, description="Left stifle", report=Report.Status.FINAL)
    log_in(page, live_server, "radiologist")
    page.click("nav[aria-label=Main] a:has-text('Reading list')")
    page.wait_for_selector("h1:has-text('Reading list')")
    for field in ("q", "date_from", "date_to", "modality", "species", "station", "referring", "report"):
        assert page.input_value(f"[name={field}]") == ""
    rows = page.locator("table.reading tbody tr")
    assert rows.count() == 2
    assert "Thorax 2 views" in rows.nth(0).inner_text()  # today's unread before today's signed
    shot(page, "reading-list")

    page.click("button:has-text('Filter')")  # every field empty: the same list, no error
    page.wait_for_selector("table.reading")
    assert rows.count() == 2 and page.locator(".errorlist").count() == 0

    page.select_option("[name=report]", "final")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**report=final**")
    assert rows.count() == 1 and "Left stifle" in rows.nth(0).inner_text()
    page.click("a:has-text('Clear')")
    page.wait_for_selector("text=2 studies")

    opened = reverse("study_viewer", args=[unread.pk])
    page.click(f"a.open-study[href='{opened}']")
    page.wait_for_url(f"**{opened}")

    phone = page.context.browser.new_context(viewport=PHONE).new_page()
    log_in(phone, live_server, "veterinarian")
    phone.goto(live_server.url + reverse("reading_list") + "?q=biscuit")
    phone.wait_for_selector("table.reading")
    assert phone.locator("table.reading tbody tr").count() == 2
    _fits(phone)
    shot(phone, "reading-list")
    assert signed.pk  # both studies are Biscuit's: the search box found them by the animal's name
