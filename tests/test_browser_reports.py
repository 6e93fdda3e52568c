"""A vet writes and signs a report in headless Chromium, keyboard only, from the order's page;
the order shows as reported, and the front desk reads the report."""

import pytest
from django.urls import reverse

from imaging.models import ImagingOrder, Report, Study
from imaging.orders.services import order_create
from tests.test_browser_orders import browser, clinic, log_in, page, shot, tab_to  # noqa: F401  (fixtures)
from vetclinic import clock

pytestmark = pytest.mark.browser


def test_a_vet_signs_a_report_with_the_keyboard_and_the_order_is_reported(
    clinic, staff, live_server, page, actor
):  # noqa: F811
    from imaging.models import Procedure

    order = order_create(
        actor=actor,
        patient=clinic,
        procedure=Procedure.objects.get(code="DX-THX2"),
        scheduled_start=clock.now(),
    )
    study = Study.objects.create(study_instance_uid=order.study_instance_uid, patient=clinic, order=order,
                                 link=Study.Link.ORDER, accession_number=order.accession_number,
                                 study_date=clock.today(), description="Thorax")  # fmt: skip
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("order_detail", args=[order.pk]))
    assert "Not yet" in page.inner_text("main")  # the studies table's report column
    page.click(f"main a[href='{reverse('study_detail', args=[study.pk])}']")
    page.focus("#id_findings")
    page.keyboard.type("Diffuse bronchial pattern.")
    page.keyboard.press("Enter")
    page.keyboard.type("Cardiac silhouette normal.")
    tab_to(page, "#id_conclusion")
    page.keyboard.type("Mild bronchitis.")
    tab_to(page, "button[value=finalize]")
    shot(page, "report-form")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Report signed")
    shot(page, "report-signed")
    report = Report.objects.get(study=study)
    assert (report.status, report.findings, report.conclusion) == (
        "final",
        "Diffuse bronchial pattern.\nCardiac silhouette normal.",
        "Mild bronchitis.",
    )
    assert ImagingOrder.objects.get(pk=order.pk).status == "reported"
    text = page.inner_text("#report")
    assert "signed by Veterinarian" in text and "Cardiac silhouette normal." in text

    context = page.context.browser.new_context(viewport={"width": 390, "height": 844})
    desk = context.new_page()
    log_in(desk, live_server, "frontdesk")
    desk.goto(live_server.url + reverse("patient_detail", args=[clinic.pk]))
    desk.click("a.badge-report-final")
    desk.wait_for_selector("#report >> text=Mild bronchitis.")
    assert desk.locator("#id_findings").count() == 0  # reading, not writing
    shot(desk, "report-front-desk")
    context.close()
