"""Each bad input gives its field error, and nothing is saved (no record, no audit entry)."""

import pytest
from django.urls import reverse

from patients.models import Owner, Patient, SearchTerm
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(client, staff):
    client.force_login(staff["front desk"])
    return client


@pytest.fixture
def owner(make_owner):
    return make_owner(given_name="Jane")


def snapshot():
    return (
        Owner.objects.count(),
        Patient.objects.count(),
        AuditEntry.objects.count(),
        SearchTerm.objects.count(),
    )


def good_patient(dog, labrador):
    return {
        "name": "Biscuit", "species": dog.pk, "breed": labrador.pk, "sex": "M", "neutered": "ALTERED",
        "birth_date": "2019-04-02", "microchip": "985 141 000 123 456", "weight_kg": "31.4",
    }  # fmt: skip


def test_a_good_patient_is_saved_with_its_weight_and_owner(desk, owner, dog, labrador):
    response = desk.post(reverse("owner_patient_create", args=[owner.pk]), good_patient(dog, labrador))
    patient = Patient.objects.get()
    assert response["Location"] == reverse("patient_detail", args=[patient.pk])
    assert patient.microchip == "985141000123456"
    assert str(patient.current_weight) == "31.400"
    assert patient.primary_owner == owner
    assert patient.breed == labrador


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"name": ""}, "name", "This field is required"),
        ({"species": ""}, "species", "This field is required"),
        ({"species": "999999"}, "species", "Select a valid choice"),
        ({"species": "dog-ish"}, "species", "Select a valid choice"),
        ({"breed": "cat-breed"}, "breed", "is not a Cat breed"),
        ({"microchip": "123"}, "microchip", "15 digits"),
        ({"microchip": "98514100012345X"}, "microchip", "15 digits"),
        ({"birth_date": "2999-01-01"}, "birth_date", "in the future"),
        ({"birth_date": "02/31/2020"}, "birth_date", "Enter a valid date"),
        ({"deceased_on": "2024-01-01"}, "deceased", "Tick deceased"),
        ({"deceased": "on", "deceased_on": "2018-01-01"}, "deceased_on", "before the birth date"),
        ({"weight_kg": "-2"}, "weight_kg", "greater than or equal to 0.001"),
        ({"weight_kg": "heavy"}, "weight_kg", "Enter a number"),
        ({"weight_kg": "5000"}, "weight_kg", "less than or equal to 2000"),
        ({"patient_id": "has spaces"}, "patient_id", "Use letters, digits"),
        ({"sex": "X"}, "sex", "Select a valid choice"),
    ],
)
def test_each_bad_patient_input_names_its_field_and_saves_nothing(
    desk, owner, dog, cat, labrador, change, field, message
):
    data = good_patient(dog, labrador)
    if change.get("breed") == "cat-breed":
        change = {"species": cat.pk, "breed": labrador.pk}
    data.update(change)
    before = snapshot()

    response = desk.post(reverse("owner_patient_create", args=[owner.pk]), data)

    assert response.status_code == 200
    form = response.context["form"]
    assert message in " ".join(form.errors[field]), form.errors
    assert "Nothing was saved" in response.content.decode()
    assert snapshot() == before


def test_a_microchip_already_on_another_animal_is_refused(desk, owner, dog, labrador, make_patient):
    make_patient("Other", microchip="985141000123456")
    before = snapshot()
    response = desk.post(reverse("owner_patient_create", args=[owner.pk]), good_patient(dog, labrador))
    assert "microchip" in response.context["form"].errors
    assert snapshot() == before


def test_editing_a_patient_changes_only_what_changed(desk, owner, dog, labrador):
    desk.post(reverse("owner_patient_create", args=[owner.pk]), good_patient(dog, labrador))
    patient = Patient.objects.get()
    data = {**good_patient(dog, labrador), "colour": "yellow", "patient_id": "ignored"}
    desk.post(reverse("patient_edit", args=[patient.pk]), data)

    update = AuditEntry.objects.filter(action="update").get()
    assert update.changes == {"colour": ["", "yellow"]}
    assert Patient.objects.get().patient_id == patient.patient_id  # not editable once given
    assert Patient.objects.get().weights.count() == 1  # the same weight again is not a new record


GOOD_OWNER = {
    "kind": "person",
    "family_name": "Hartley",
    "given_name": "Jane",
    "phone": "01632 960123",
    "email": "jane@example.org",
}


def test_a_good_owner_is_saved(desk):
    response = desk.post(reverse("owner_create"), GOOD_OWNER)
    owner = Owner.objects.get()
    assert response["Location"] == reverse("owner_detail", args=[owner.pk])
    assert AuditEntry.objects.get().action == "create"


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"family_name": ""}, "family_name", "A person needs a family name"),
        (
            {"kind": "organisation", "organisation_name": ""},
            "organisation_name",
            "An organisation needs its name",
        ),
        ({"kind": "alien"}, "kind", "Select a valid choice"),
        ({"email": "jane-at-example"}, "email", "Enter a valid email"),
        ({"phone": "call me"}, "phone", "Enter a phone number"),
        ({"mobile": "12-34"}, "mobile", "at least 6 digits"),
        ({"family_name": "x" * 65}, "family_name", "at most 64 characters"),
    ],
)
def test_each_bad_owner_input_names_its_field_and_saves_nothing(desk, change, field, message):
    before = snapshot()
    response = desk.post(reverse("owner_create"), {**GOOD_OWNER, **change})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert snapshot() == before


def test_a_bad_visit_names_its_field(desk, make_patient):
    patient = make_patient()
    response = desk.post(
        reverse("visit_create", args=[patient.pk]), {"starts_at": "yesterday-ish", "status": "booked"}
    )
    assert "starts_at" in response.context["form"].errors
    assert patient.visits.count() == 0


def test_editing_an_owner_and_a_visit_is_saved_and_audited(desk, owner, make_patient):
    desk.post(reverse("owner_edit", args=[owner.pk]), {**GOOD_OWNER, "family_name": "Hartley-Smith"})
    assert Owner.objects.get().family_name == "Hartley-Smith"
    assert AuditEntry.objects.filter(action="update").get().changes["family_name"] == [
        "Hartley",
        "Hartley-Smith",
    ]

    patient = make_patient()
    desk.post(
        reverse("visit_create", args=[patient.pk]),
        {"starts_at": "2026-11-23T09:30", "reason": "Lame", "status": "booked"},
    )
    visit = patient.visits.get()
    desk.post(
        reverse("visit_edit", args=[visit.pk]),
        {"starts_at": "2026-11-23T09:30", "reason": "Lame", "status": "arrived"},
    )
    assert patient.visits.get().status == "arrived"
