"""The report beside the images in headless Chromium (viewer/src/report.js): a vet opens the
viewer, picks the template the study is offered, keeps a draft, signs it; the report is final in
the database and the panel shows it read-only with Amend; the opening is audited once. Also the
panel at 375 px."""

import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pydicom.uid import generate_uid

from imaging.models import Procedure, Report, ReportTemplate, Study
from imaging.reports.template_texts import templates_load
from patients.models import Species
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)
from vetclinic.audit.models import AuditEntry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# What Chromium logs for the answer 400 to a refused post (each test makes one on purpose).
REFUSED = "Failed to load resource: the server responded with a status of 400 (Bad Request)"


@pytest.fixture
def head_study(reference_data, ingest):  # noqa: F811
    # Transactional tests empty the tables the migrations filled: the templates come back here.
    templates_load(ReportTemplate, Procedure, Species)
    study, series = generate_uid(), generate_uid()
    slices = []
    for number in range(3):
        ds, changes = ct_slice(study, series, number)
        slices.append((ds, {**changes, "BodyPartExamined": "HEAD", "SeriesDescription": "Brain"}))
    ingest(*slices)
    return Study.objects.get(study_instance_uid=study)


def viewer_open(page, live_server, study, problems):
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(live_server.url + reverse("study_viewer", args=[study.pk]))
    try:
        page.wait_for_selector("#viewer[data-state=rendered]")
    except PlaywrightTimeoutError:
        page.screenshot(path=str(SCREENSHOTS / "report-panel-failed.png"))
        raise AssertionError((page.inner_text("main"), problems)) from None


def status_is(page, status):
    try:
        page.wait_for_selector(f"#viewer-report-status[data-status='{status}']")
    except PlaywrightTimeoutError:
        raise AssertionError(page.inner_text("#viewer-report")) from None


def test_a_vet_picks_a_template_keeps_a_draft_and_signs_it_in_the_viewer(
    head_study, staff, live_server, page
):  # noqa: F811
    problems: list[str] = []
    log_in(page, live_server, "veterinarian")
    viewer_open(page, live_server, head_study, problems)
    status_is(page, "none")
    # Offered first: the template for a CT of the head (the series' modality and body part).
    suggested = page.locator("#viewer-report-template optgroup[label='For this study'] option")
    assert suggested.all_inner_texts() == ["CT head"]

    # Nothing measured and no key image on this branch: the buttons say so and insert nothing.
    page.click("[data-report-do=measurements]")
    page.wait_for_selector("#viewer-report-inserted[data-inserted='0']")
    assert page.inner_text("#viewer-report-inserted") == "No measurements yet."
    page.click("[data-report-do=key-images]")
    page.wait_for_function(
        "() => document.querySelector('#viewer-report-inserted').textContent === 'No key images marked yet.'"
    )
    assert page.input_value("#report-findings") == ""

    template = ReportTemplate.objects.get(name="CT head")
    page.select_option("#viewer-report-template", label="CT head")
    page.click("[data-report-do=template]")
    assert page.input_value("#report-findings") == template.findings
    assert page.input_value("#report-conclusion") == template.conclusion
    page.focus("#report-findings")
    page.keyboard.press("Control+End")
    page.keyboard.type("\nLeft tympanic bulla filled with soft-tissue attenuating material.")
    page.click("button[value=save]")
    status_is(page, "draft")
    assert page.inner_text("#viewer-report .flash") == "Draft saved."
    report = Report.objects.get(study=head_study)
    assert report.status == "draft"
    assert (
        report.findings
        == template.findings + "\nLeft tympanic bulla filled with soft-tissue attenuating material."
    )

    # A template over text already written asks first; "no" keeps the text.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.select_option("#viewer-report-template", label="CT head")
    page.click("[data-report-do=template]")
    assert asked == ["Replace the findings and the conclusion with the template?"]
    assert page.input_value("#report-findings") == report.findings

    # With everything emptied, signing is refused, by field.
    page.fill("#report-findings", "")
    page.fill("#report-conclusion", "")
    page.click("button[value=finalize]")
    page.wait_for_selector("#viewer-report .field.has-error #report-findings")
    assert "Write the findings or the conclusion" in page.inner_text("#viewer-report .has-error")
    assert Report.objects.get(study=head_study).status == "draft"

    page.fill("#report-findings", "Otitis media on the left.")
    page.fill("#report-conclusion", "Left otitis media; no intracranial extension.")
    page.screenshot(path=str(SCREENSHOTS / "report-panel-draft.png"))
    page.click("button[value=finalize]")
    status_is(page, "final")
    report = Report.objects.get(study=head_study)
    assert (report.status, report.version, report.conclusion) == (
        "final",
        1,
        "Left otitis media; no intracranial extension.",
    )
    assert report.signed_by == staff["veterinarian"]
    # Read-only now, Amend closed below it.
    assert "Left otitis media; no intracranial extension." in page.inner_text("#viewer-report-text")
    assert not page.is_visible("#report-findings")
    assert page.locator("#viewer-report details summary").inner_text() == "Amend the signed report"
    assert page.locator("#viewer-report-template").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "report-panel-signed.png"))

    # The viewer's opening is in the log once; the panel's posts are not openings.
    opened = AuditEntry.objects.filter(action="open", object_id=str(head_study.pk))
    assert [(e.user, e.changes["page"][1]) for e in opened] == [(staff["veterinarian"], "viewer")]
    assert problems == [REFUSED], problems  # the one refused post, and nothing else


def test_the_panel_at_375_px_and_amending_there(head_study, staff, live_server, page):  # noqa: F811
    from imaging.reports.services import report_finalize
    from vetclinic.audit.services import Actor

    report_finalize(
        actor=Actor.for_user(staff["veterinarian"]), study=head_study, findings="Normal.", conclusion=""
    )
    page.set_viewport_size({"width": 375, "height": 812})
    problems: list[str] = []
    log_in(page, live_server, "veterinarian")
    viewer_open(page, live_server, head_study, problems)
    status_is(page, "final")
    page.click("#viewer-report details summary")
    page.fill("#report-findings", "Normal study of the head.")
    page.click("button[value=amend]")  # no reason: refused, by field, the text kept
    page.wait_for_selector("#viewer-report .has-error #report-reason")
    assert page.input_value("#report-findings") == "Normal study of the head."
    page.fill("#report-reason", "Wording")
    page.click("button[value=amend]")
    status_is(page, "amended")
    assert Report.objects.get(study=head_study).findings == "Normal study of the head."
    # Nothing sticks out sideways at 375 px: the panel is below the images, as wide as the page.
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.querySelector('#viewer-report').getBoundingClientRect().right]"
    )
    assert widths[0] <= 375 and widths[1] <= 375, widths
    page.screenshot(path=str(SCREENSHOTS / "report-panel-375.png"), full_page=True)
    assert problems == [REFUSED], problems  # the one refused post, and nothing else


def test_the_study_and_patient_pages_at_375_px_open_the_viewer_and_show_who_opened(
    head_study,
    staff,
    live_server,
    page,
    make_patient,  # noqa: F811
):
    rex = make_patient("Rex")
    Study.objects.filter(pk=head_study.pk).update(patient=rex, link=Study.Link.MANUAL)
    page.set_viewport_size({"width": 375, "height": 812})
    log_in(page, live_server, "admin")
    page.goto(live_server.url + reverse("patient_detail", args=[rex.pk]))
    page.screenshot(path=str(SCREENSHOTS / "report-patient-375.png"), full_page=True)
    page.click(f"a[href='{reverse('study_viewer', args=[head_study.pk])}']")
    page.wait_for_selector("#viewer[data-state=rendered]")
    page.click("text=Back to the study")
    page.wait_for_selector("text=Opened by")
    rows = page.locator("table.openings tr").all_inner_texts()
    assert [row.split("\t")[1:3] for row in rows] == [["admin", "study"], ["admin", "viewer"]], rows
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(SCREENSHOTS / "report-study-375.png"), full_page=True)
