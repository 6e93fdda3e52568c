"""Share links in headless Chromium: a specialist opens their link LOGGED OUT, sees the image
in the read-only viewer (the canvas has pixels, read over DICOMweb with the link's grant) and
files an opinion that lands on the study; the owner's page on a 375 px phone; the vet makes a
link from the study page and gets its QR code."""

import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.uid import generate_uid

from imaging.models import Study
from sharing import services
from sharing.models import ConsultReport, ShareLink
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import CANVAS_STATS, ct_slice
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.services import Actor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ACTOR = Actor.system("tests")


@pytest.fixture
def shared_study(reference_data, ingest, make_patient):  # noqa: F811
    study, series = generate_uid(), generate_uid()
    ingest(*(ct_slice(study, series, number) for number in (0, 1, 2)))
    found = Study.objects.get(study_instance_uid=study)
    found.patient = make_patient("Biscuit")
    found.description = "Thorax CT"
    found.save()
    return found


def test_a_specialist_opens_the_link_logged_out_sees_the_image_and_files_an_opinion(
    shared_study,
    live_server,
    page,  # noqa: F811
):
    consult, raw = services.consult_create(
        actor=ACTOR, study=shared_study, destination="Dr Reyes", clinical_question="Any pulmonary nodules?"
    )
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(live_server.url + reverse("share_open", args=[raw]))
    assert "Log out" not in page.inner_text("body")  # nobody is logged in
    try:
        page.wait_for_selector("#viewer[data-state=rendered][data-image-index='0']")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "share-specialist-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None
    stats = page.evaluate(CANVAS_STATS)
    assert stats["width"] > 0 and stats["mean"] > 0 and stats["top"] > stats["bottom"], stats
    assert "Any pulmonary nodules?" in page.inner_text(".share-question")
    page.screenshot(path=str(SCREENSHOTS / "share-specialist.png"))

    page.fill("#author_name", "Dr Reyes")
    page.fill("#opinion_text", "No nodules. Mild bronchial pattern.")
    page.click("text=File the opinion on the study")
    page.wait_for_selector("#opinion-filed")
    report = ConsultReport.objects.get()
    assert (report.study_id, report.author_name, report.text) == (
        shared_study.pk, "Dr Reyes", "No nodules. Mild bronchial pattern.")  # fmt: skip
    consult.refresh_from_db()
    assert consult.status == "reported"
    assert AuditEntry.objects.filter(action=services.OPENED, object_id=str(shared_study.pk)).count() == 1
    assert not [p for p in problems if "403" in p or "Content Security Policy" in p], problems


def test_the_owner_page_fits_a_phone(shared_study, live_server, browser):  # noqa: F811
    _, raw = services.link_create(
        actor=ACTOR, study=shared_study, kind="owner",
        note="Biscuit's chest looks clear. We will check again in three months.",
    )  # fmt: skip
    phone = browser.new_page(viewport={"width": 375, "height": 740})
    phone.goto(live_server.url + reverse("share_open", args=[raw]))
    phone.wait_for_function(
        "() => { const i = document.querySelector('.share-image img'); return i && i.complete && i.naturalWidth > 0; }"
    )
    assert "chest looks clear" in phone.inner_text("#share-note")
    assert "Biscuit" in phone.inner_text("h1")
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, width  # nothing sideways to scroll
    shown = phone.evaluate("() => document.querySelector('.share-image img').getBoundingClientRect().width")
    assert 200 < shown <= 375, shown
    assert phone.locator("text=Download image 1 (JPEG)").count() == 1
    phone.screenshot(path=str(SCREENSHOTS / "share-owner-375.png"), full_page=True)


def test_the_vet_makes_a_link_from_the_study_page_and_revokes_it(shared_study, staff, live_server, page):  # noqa: F811
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_detail", args=[shared_study.pk]))
    page.click("text=Share the study (a link for a specialist or the owner)")
    page.select_option("#share-kind", "owner")
    page.fill("#share-note", "All clear.")
    page.click("text=Make the link")
    page.wait_for_selector("#share-qr svg")
    url = page.input_value("#share-url")
    assert url == f"{live_server.url}/s/{url.rsplit('/', 1)[1]}" and len(url.rsplit("/", 1)[1]) == 43
    link = ShareLink.objects.get()
    assert link.kind == "owner" and link.note == "All clear."
    page.screenshot(path=str(SCREENSHOTS / "share-created.png"))
    page.click("text=Back to the study")
    assert page.locator("#share-links tr[data-state=active]").count() == 1
    page.click("#share-links button:has-text('Revoke')")
    page.wait_for_selector("#share-links tr[data-state=revoked]")
    page.screenshot(path=str(SCREENSHOTS / "share-links.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.locator("#sharing").screenshot(path=str(SCREENSHOTS / "share-links-375.png"))
    visitor = page.context.browser.new_page()
    assert visitor.goto(url).status == 410
