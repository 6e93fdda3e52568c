"""Round trips in headless Chromium: every edit form of the UI, opened on a record with every
field filled (as HL7, REST and the desk fill them: times to the second, a retired breed, a vet
who left) and saved unchanged, changes nothing in the database. The test client posts what the
test says; a browser posts what the page holds, and drops a value its input cannot read."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils.timezone import make_aware

from imaging.models import ImagingOrder, Modality, Procedure, Report, Study
from imaging.orders.services import order_create
from imaging.reports.services import report_save
from patients.models import Owner, Patient, Visit
from patients.services import owner_upsert, patient_upsert, visit_create
from tests.conftest import CLINIC_TODAY, PASSWORD, ROOT
from tests.test_browser_orders import browser, clinic, log_in, page  # noqa: F401  (fixtures)
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.browser
SCREENSHOTS = ROOT / "var" / "screenshots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def filled(clinic, staff, actor):
    """An owner, an animal, a visit, an order and a report draft with every field filled."""
    owner = owner_upsert(actor=actor, fields={
        "title": "Dr", "family_name": "Okafor", "given_name": "Ada", "phone": "01632 960456",
        "mobile": "+44 7700 900123", "email": "ada@example.org", "address_line1": "1 High Street",
        "address_line2": "Flat 2", "city": "Bristol", "postcode": "BS1 4DJ", "country": "GB",
        "notes": "Prefers mornings.\nCalls ahead.",
    })  # fmt: skip
    dog = clinic.species
    retired = dog.breeds.get(code="62137007")  # Labrador, no longer offered in new records
    patient = patient_upsert(actor=actor, owner=owner, weight_kg=Decimal("31.4"), fields={
        "name": "Rex", "species": dog, "breed": retired, "breed_text": "Lab cross", "sex": "M",
        "neutered": "ALTERED", "birth_date": date(2019, 4, 2), "birth_date_estimated": True,
        "colour": "Black", "microchip": "985141000123457", "notes": "Bites when scared.",
    })  # fmt: skip
    retired.active = False
    retired.save()
    departed = User.objects.create_user(
        username="oldvet", password=PASSWORD, first_name="Former", last_name="Vet"
    )
    departed.groups.add(Group.objects.get(name="veterinarian"))
    visit = visit_create(
        actor=actor, patient=patient, reason="Lameness", vet=departed, status=Visit.Status.ARRIVED,
        starts_at=make_aware(datetime(2026, 11, 23, 10, 30, 45, 250000)),
    )  # fmt: skip
    departed.is_active = False  # the vet has left the clinic since
    departed.save()
    order = order_create(
        actor=actor, patient=patient, procedure=Procedure.objects.get(code="DX-THX2"),
        station=Modality.objects.get(ae_title="DRROOM"), visit=visit, reason="Coughing",
        scheduled_start=make_aware(datetime(2026, 11, 23, 11, 15, 30)),  # from HL7, to the second
        referring_vet="Dr Okafor", performing_vet="Dr Lee", priority="HIGH", weight_kg=Decimal("31.4"),
    )  # fmt: skip
    study = Study.objects.create(
        study_instance_uid=order.study_instance_uid, patient=patient, order=order, link=Study.Link.ORDER,
        accession_number=order.accession_number, study_date=CLINIC_TODAY, description="Thorax",
    )  # fmt: skip
    report_save(
        actor=actor, study=study, findings="Bronchial pattern.\nNormal heart.", conclusion="Bronchitis."
    )
    dead = patient_upsert(actor=actor, owner=owner, fields={
        "name": "Old Tom", "species": dog, "birth_date": date(2008, 1, 5), "deceased": True,
        "deceased_on": date(2025, 1, 31),
    })  # fmt: skip
    return {"owner": owner, "patient": patient, "dead": dead, "visit": visit, "order": order, "study": study}


def snapshot(records):
    """Every column of every record, their owners and weights, and the audit log's length."""
    rows = {}
    for key, record in records.items():
        fresh = type(record).objects.get(pk=record.pk)
        rows[key] = {**model_to_dict(fresh), "updated": getattr(fresh, "updated", None)}
    rows["report"] = model_to_dict(Report.objects.get(study=records["study"]))
    rows["weights"] = list(records["patient"].weights.values_list("kg", "measured_on"))
    rows["ownerships"] = list(records["patient"].ownerships.values_list("owner_id", "role", "is_primary"))
    # Changes only: opening the study page is itself audited (imaging/studies/opened.py), a read.
    rows["audit"] = AuditEntry.objects.exclude(action="open").count()
    return rows


def test_every_edit_form_saved_unchanged_in_a_browser_changes_nothing(filled, live_server, page):  # noqa: F811
    before = snapshot(filled)
    log_in(page, live_server, "veterinarian")
    url = live_server.url

    page.goto(url + reverse("owner_edit", args=[filled["owner"].pk]))
    page.click("button:has-text('Save owner')")
    page.wait_for_selector("text=Saved Okafor")

    for animal in (filled["patient"], filled["dead"]):
        page.goto(url + reverse("patient_edit", args=[animal.pk]))
        page.click("button:has-text('Save animal')")
        page.wait_for_selector(f"text=Saved {animal.name}")

    page.goto(url + reverse("visit_edit", args=[filled["visit"].pk]))
    page.click("button:has-text('Save visit')")
    page.wait_for_selector("text=Visit saved")

    order = filled["order"]
    page.goto(url + reverse("order_detail", args=[order.pk]))  # the reschedule form on the order page
    page.click("#reschedule summary")
    page.click("button:has-text('Move the order')")
    page.wait_for_selector(f"text={order.accession_number} moved to")

    page.goto(url + reverse("order_edit", args=[order.pk]))  # its details
    page.click("button:has-text('Save order')")
    page.wait_for_selector(f"text=Saved {order.accession_number}")

    page.goto(url + reverse("order_board") + f"?day={CLINIC_TODAY}")  # and on the board's card
    card = f"#order-{order.pk}"
    page.click(f"{card} >> text=Reschedule")
    page.wait_for_selector(f"{card} form.reschedule")
    page.click(f"{card} button:has-text('Move')")
    page.wait_for_selector(f"{card}:not(.editing)")

    page.goto(url + reverse("study_detail", args=[filled["study"].pk]))
    page.click("button[value=save]")
    page.wait_for_selector("text=Draft saved")

    after = snapshot(filled)
    for key in before:
        assert after[key] == before[key], key


def test_the_pages_fit_a_phone_screen(filled, live_server, browser):  # noqa: F811
    """Screenshots at 390 px into var/screenshots/ (looked at by hand); nothing wider than the screen."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone = browser.new_page(viewport=PHONE)
    phone.set_default_timeout(30_000)
    log_in(phone, live_server, "frontdesk")
    pages = {
        "home": reverse("home") + "?q=okafor",
        "owner": reverse("owner_detail", args=[filled["owner"].pk]),
        "patient": reverse("patient_detail", args=[filled["patient"].pk]),
        "patient-form": reverse("patient_edit", args=[filled["patient"].pk]),
        "visit-form": reverse("visit_edit", args=[filled["visit"].pk]),
        "order": reverse("order_detail", args=[filled["order"].pk]),
        "order-form": reverse("order_create") + f"?patient={filled['patient'].pk}",
        "order-edit": reverse("order_edit", args=[filled["order"].pk]),
        "board": reverse("order_board") + f"?day={CLINIC_TODAY}",
        "study": reverse("study_detail", args=[filled["study"].pk]),
    }
    wide = {}
    for name, path in pages.items():
        phone.goto(live_server.url + path)
        phone.wait_for_load_state("networkidle")
        phone.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"), full_page=True)
        wide[name] = phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    assert wide == dict.fromkeys(pages, 0)
    assert Patient.objects.get(pk=filled["patient"].pk).birth_date == date(2019, 4, 2)
    assert Owner.objects.filter(family_name="Okafor").count() == 1 and ImagingOrder.objects.count() == 1
