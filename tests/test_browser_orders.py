"""The front desk schedules imaging in headless Chromium (Debian's), driven by Playwright against
a live server: keyboard only on the order form, then the day board."""

import os
import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils.timezone import make_aware
from playwright.sync_api import expect

from imaging.models import ImagingOrder, Modality, Procedure
from imaging.orders import services as orders
from imaging.orders.catalog import procedures_load
from patients.models import Species
from patients.services import owner_upsert, patient_upsert
from tests.conftest import CLINIC_TODAY, PASSWORD
from tests.test_worklist_dicom import findscu

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(os.environ.get("VETPACS_SHOTS", "/tmp/vetpacs-shots"))
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture
def browser(chromium):
    """The module's Chromium; every context the test opened in it (each page has one) is closed
    after the test, with its cookies, storage and cache."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield chromium
    for context in chromium.contexts:
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport=WIDE)
    # A step's longest wait: on a 2-core CI machine running the other passes beside this one,
    # Chromium's software WebGL once took more than 15 s to let a login form be filled.
    page.set_default_timeout(30_000)
    return page


@pytest.fixture
def clinic(reference_data, actor):
    """What a transactional test lost with the migrations' data, two stations, and a dog."""
    procedures_load(Procedure, Species)
    Modality.objects.create(ae_title="DRROOM", modality_type="DX", station_name="DR1", location="X-ray room")
    Modality.objects.create(
        ae_title="USROOM", modality_type="US", station_name="US1", location="Ultrasound room"
    )
    owner = owner_upsert(
        actor=actor, fields={"family_name": "Hartley", "given_name": "Jane", "phone": "01632 960123"}
    )
    dog = Species.objects.get(scheme="SCT", code="448771007")
    labrador = dog.breeds.get(code="62137007")
    return patient_upsert(
        actor=actor, fields={"name": "Biscuit", "species": dog, "breed": labrador}, owner=owner
    )


def shot(page, name):
    width = page.viewport_size["width"]
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


def log_in(page, live_server, username):
    page.goto(live_server.url + reverse("login"))
    try:
        page.wait_for_selector("#id_username")
    except Exception as error:
        shown = page.evaluate("document.documentElement.outerHTML")[:3000]
        raise AssertionError(f"no login form at {page.url}: {shown}") from error
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/")


def tab_to(page, selector, presses=1):
    """Tab (at most ``presses`` times) until ``selector`` has the focus: the tab order is the form's."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement === document.querySelector('{selector}')"):
            return
    raise AssertionError(
        f"Tab did not reach {selector}; the focus is on {page.evaluate('document.activeElement.id')}"
    )


def schedule_thorax_on_dr_with_the_keyboard(page, live_server, patient):
    """From the animal's page: "Thorax 2 views" on DRROOM at 10:30 today, keyboard only.
    Returns the order as saved: the place to follow it further (the worklist, findscu)."""
    page.goto(live_server.url + reverse("patient_detail", args=[patient.pk]))
    page.click("text=Schedule imaging")
    page.wait_for_selector("#id_procedure:focus")
    page.keyboard.type("Thorax 2")  # the select's type-ahead; the station list narrows (htmx)
    # A locator wait, not wait_for_function: the Content-Security-Policy forbids evaluating strings.
    expect(page.locator("#id_station option:checked")).to_have_text(re.compile(r"^DRROOM"))
    tab_to(page, "#id_station")
    tab_to(page, "#id_day")  # today already
    tab_to(page, "#id_time", presses=6)  # Chromium's date field: day, month, year take a Tab each
    page.keyboard.type("1030")
    page.wait_for_selector("#slots .free button.slot")  # DRROOM's free times for the day
    tab_to(page, "#id_duration_minutes")  # empty: the procedure's 15 minutes
    tab_to(page, "#id_priority_0")  # the priority radios are one stop, Routine chosen
    tab_to(page, "#id_reason")
    page.keyboard.type("Coughing for two weeks")
    tab_to(page, "#id_referring_vet")
    page.keyboard.type("Dr Okafor")
    shot(page, "order-form")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Thorax 2 views')")
    return ImagingOrder.objects.select_related("patient", "station").get(patient=patient)


def test_front_desk_schedules_a_thorax_for_a_dog_and_marks_it_arrived_on_the_board(
    clinic, staff, live_server, page, dicom_listener, tmp_path
):
    log_in(page, live_server, "frontdesk")
    order = schedule_thorax_on_dr_with_the_keyboard(page, live_server, clinic)
    assert (order.station.ae_title, order.procedure.code, order.scheduled_start.strftime("%H:%M")) == (
        "DRROOM",
        "DX-THX2",
        "10:30",
    )
    assert order.reason == "Coughing for two weeks" and order.referring_vet == "Dr Okafor"
    assert order.accession_number in page.inner_text("main")
    shot(page, "order-page")

    # On the day board, in the Scheduled column, with the owner's family name.
    page.click("nav >> text=Day board")
    card = f"#order-{order.pk}"
    page.wait_for_selector(f"section:has(h2:has-text('Scheduled')) {card}")
    text = page.inner_text(card)
    for said in ("10:30", "DRROOM", "Biscuit", "Dog", "Hartley", "Thorax 2 views", order.accession_number):
        assert said in text, said
    shot(page, "board")

    # Arrived: the card changes in place, then the board moves it to its column.
    page.click(f"{card} button:has-text('Arrived')")
    page.wait_for_selector(f"section:has(h2:has-text('Arrived')) {card}")
    order.refresh_from_db()
    assert order.status == ImagingOrder.Status.ARRIVED
    shot(page, "board-arrived")

    # The DR room's worklist query (dcmtk findscu -W) finds the dog, its owner and breed.
    code, output, found = findscu(
        dicom_listener, tmp_path,
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=DRROOM",
        "ScheduledProcedureStepSequence[0].Modality=DX",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={CLINIC_TODAY:%Y%m%d}",
        "PatientName", "PatientSpeciesDescription", "PatientBreedCodeSequence", "ResponsiblePerson",
        "AccessionNumber", "RequestedProcedureDescription",
    )  # fmt: skip
    assert code == 0 and len(found) == 1, output
    item = found[0]
    assert str(item.PatientName) == "Hartley^Biscuit"
    assert item.PatientSpeciesDescription == "Canis lupus familiaris"
    assert item.PatientBreedCodeSequence[0].CodeMeaning == "Labrador retriever dog breed"
    assert str(item.ResponsiblePerson).startswith("Hartley^")
    assert (item.AccessionNumber, item.RequestedProcedureDescription) == (
        order.accession_number,
        "Thorax 2 views (lateral + VD/DV)",
    )

    # Reschedule opens in the card; the board leaves it alone meanwhile.
    page.click(f"{card} >> text=Reschedule")
    page.wait_for_selector(f"{card} form.reschedule")
    shot(page, "board-reschedule")
    page.fill(f"#id_r{order.pk}-time", "11:00")
    page.click(f"{card} button:has-text('Move')")
    page.wait_for_selector(f"{card}:not(.editing) >> text=11:00")
    order.refresh_from_db()
    assert order.scheduled_start.strftime("%H:%M") == "11:00"


def test_from_a_free_slot_on_the_board_at_phone_width(clinic, staff, live_server, browser, actor):
    """A free slot on the board leads to the animal search, then to the form with the station and
    time filled in; a clash is warned. Screenshots at 390 px: nothing may be wider than the screen."""
    tomorrow = CLINIC_TODAY + timedelta(days=1)
    thorax = Procedure.objects.get(code="DX-THX2")
    order = orders.order_create(
        actor=actor, patient=clinic, procedure=thorax, station=Modality.objects.get(ae_title="DRROOM"),
        scheduled_start=make_aware(datetime.combine(tomorrow, time(10, 30))), reason="Coughing",
    )  # fmt: skip
    page = browser.new_page(viewport=NARROW)
    page.set_default_timeout(30_000)
    log_in(page, live_server, "frontdesk")

    page.goto(live_server.url + reverse("order_board") + f"?day={tomorrow}&station=DRROOM")
    page.wait_for_selector(f"#order-{order.pk}")
    _fits(page)
    shot(page, "board")
    page.click(".free-row a.slot >> nth=1")  # 10:45 onwards, after Biscuit's thorax
    page.wait_for_selector("#q:focus")
    page.keyboard.type("hartley")
    page.wait_for_selector("#pick-results a:has-text('Biscuit')")
    _fits(page)
    shot(page, "order-pick")
    page.click("#pick-results a:has-text('Biscuit')")

    page.wait_for_selector("h1:has-text('Schedule imaging for Biscuit')")
    assert page.input_value("#id_time") == "10:45" and page.input_value("#id_day") == tomorrow.isoformat()
    assert page.inner_text("#id_station option:checked").startswith("DRROOM")
    page.select_option("#id_procedure", label=thorax.name)
    page.fill("#id_time", "10:35")
    page.wait_for_selector("#slots .clash:has-text('DRROOM is already booked then')")
    _fits(page)
    shot(page, "order-form-clash")
    page.click("button:has-text('Schedule')")
    page.wait_for_selector("#id_book_anyway_error")  # the tick is needed: nothing saved yet
    assert ImagingOrder.objects.count() == 1
    page.check("#id_book_anyway")
    page.click("button:has-text('Schedule')")
    page.wait_for_selector("h1:has-text('Thorax 2 views')")
    assert ImagingOrder.objects.count() == 2
    _fits(page)
    shot(page, "order-page")


def _fits(page):
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def test_edit_order_at_phone_width_saved_unchanged_changes_nothing_then_marks_teleradiology(
    clinic, staff, live_server, browser, actor
):
    """The order page's Edit order, at 390 px: saved as it opens, nothing changes (not even the
    audit log or the weight history); ticking "Send for teleradiology" then marks the order."""
    from django.forms.models import model_to_dict

    from vetclinic.audit.models import AuditEntry

    order = orders.order_create(
        actor=actor, patient=clinic, procedure=Procedure.objects.get(code="DX-THX2"),
        station=Modality.objects.get(ae_title="DRROOM"), reason="Coughing\nfor two weeks",
        scheduled_start=make_aware(datetime.combine(CLINIC_TODAY, time(11, 15, 30))),  # from HL7, to the second
        referring_vet="Dr Okafor", performing_vet="Dr Lee", priority="HIGH", weight_kg="31.4",
    )  # fmt: skip

    def snapshot():
        fresh = ImagingOrder.objects.get(pk=order.pk)
        weights = list(clinic.weights.values_list("kg", "measured_on"))
        return {**model_to_dict(fresh), "updated": fresh.updated}, weights, AuditEntry.objects.count()

    before = snapshot()
    page = browser.new_page(viewport=NARROW)
    page.set_default_timeout(30_000)
    log_in(page, live_server, "frontdesk")
    page.goto(live_server.url + reverse("order_detail", args=[order.pk]))
    page.click("a:has-text('Edit order')")
    page.wait_for_selector("h1:has-text('Edit Thorax 2 views')")
    assert page.input_value("#id_weight_kg") == "31.400"
    assert page.input_value("#id_reason") == "Coughing\nfor two weeks"
    _fits(page)
    shot(page, "order-edit")
    page.click("button:has-text('Save order')")
    page.wait_for_selector(f"text=Saved {order.accession_number}")
    assert snapshot() == before

    page.click("a:has-text('Edit order')")
    page.check("#id_teleradiology")
    page.click("button:has-text('Save order')")
    page.wait_for_selector("dd:has-text('send for teleradiology')")
    _fits(page)
    stored = ImagingOrder.objects.get(pk=order.pk)
    assert stored.teleradiology is True and stored.reason == "Coughing\nfor two weeks"
    assert AuditEntry.objects.get(object_id=str(order.pk), action="update").changes == {
        "teleradiology": ["False", "True"]
    }
