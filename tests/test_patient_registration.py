"""patients/registration.py without HL7: a registration built by hand gets the rules an ADT
message gets, because the HL7 adapter only unpacks the message and calls the same service."""

import ast
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from patients.models import Owner, OwnerExternalId, Patient, UnmappedCode, Visit
from patients.registration import (
    AnimalRegistration,
    Coded,
    OwnerDetails,
    RegistrationRefused,
    Sex,
    VisitDetails,
    patient_register,
)
from patients.services import owner_upsert
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db

SENDER = "import:clinic-files"


def registration(**changes):
    fields = {
        "sender": SENDER,
        "ids": (("import:clinic-files", "A-1"),),
        "name": "Biscuit",
        "birth_date": date(2019, 4, 2),
        "sex": Sex.MALE,
        "species_code": Coded(system="SCT", code="448771007", text="Dog"),  # SNOMED CT: ours
        "owner": OwnerDetails(family_name="Hartley", given_name="Jane", phone="01632960123"),
    }
    return AnimalRegistration(**{**fields, **changes})


def test_a_new_animal_with_an_unmapped_species_code_carries_the_standin_its_owner_chosen_by_account(actor):
    known = owner_upsert(
        actor=actor,
        fields={"family_name": "Hartley", "given_name": "J."},
        external=(f"{SENDER}:account", "ACC-9"),
    )
    patient = patient_register(
        actor=actor,
        registration=registration(
            species_code=Coded(system="", code="K9", text="Canine"),
            owner_account="ACC-9",
            weight_kg=Decimal("31.4"),
            example={"file": "animals.csv"},
        ),
    )
    patient.refresh_from_db()
    unmapped = UnmappedCode.objects.get()
    assert (unmapped.system, unmapped.kind, unmapped.external_code, unmapped.count) == (
        SENDER,
        "species",
        "K9",
        1,
    )
    assert unmapped.examples[0]["file"] == "animals.csv" and unmapped.examples[0]["patient"] == "A-1"
    assert (patient.species, patient.species.name, patient.species.active) == (
        unmapped.species,
        "Canine",
        False,
    )
    # The owner with that account, updated from the details; no second owner.
    assert Owner.objects.get() == known == patient.primary_owner
    assert (patient.primary_owner.given_name, patient.primary_owner.phone) == ("Jane", "01632960123")
    assert str(patient.current_weight) == "31.400"
    assert patient.external_ids.get().value == "A-1"


def test_a_known_animal_keeps_its_species_when_an_unmapped_code_comes(actor, dog):
    patient = patient_register(actor=actor, registration=registration())
    again = patient_register(
        actor=actor, registration=registration(species_code=Coded(system="", code="K9", text="Canine"))
    )
    assert again == patient and Patient.objects.get().species == dog
    assert UnmappedCode.objects.get().external_code == "K9"  # listed all the same


def test_without_an_account_the_owner_is_the_animals_owner_of_that_family_name(actor):
    patient = patient_register(actor=actor, registration=registration())
    patient_register(
        actor=actor, registration=registration(owner=OwnerDetails(family_name="HARTLEY", city="Wye"))
    )
    owner = Owner.objects.get()
    assert (owner.family_name, owner.given_name, owner.city) == ("HARTLEY", "Jane", "Wye")
    assert patient.primary_owner == owner and not OwnerExternalId.objects.exists()


def test_a_visit_is_booked_once_and_a_visit_number_of_another_animal_is_refused_undoing_the_registration(
    actor,
):
    visit = VisitDetails(number="V-1", emergency=True)
    first = patient_register(actor=actor, registration=registration(visit=visit))
    patient_register(actor=actor, registration=registration(visit=visit))
    assert list(Visit.objects.values_list("patient", "external_id", "reason")) == [
        (first.pk, "V-1", "Emergency")
    ]
    audited = AuditEntry.objects.count()
    other = registration(
        ids=((SENDER, "A-2"),), name="Tiddles", owner=OwnerDetails(family_name="Ng"), visit=visit
    )
    with pytest.raises(RegistrationRefused) as refused:
        patient_register(actor=actor, registration=other)
    assert (refused.value.field, refused.value.problem) == ("visit", "taken")
    assert (Patient.objects.count(), Owner.objects.count(), AuditEntry.objects.count()) == (1, 1, audited)


def test_a_new_animal_without_a_species_is_refused_naming_the_field(actor):
    with pytest.raises(RegistrationRefused) as refused:
        patient_register(actor=actor, registration=registration(species_code=None))
    assert (refused.value.field, refused.value.problem, str(refused.value)) == (
        "species",
        "missing",
        "species is required for a new animal",
    )
    assert not Patient.objects.exists()


def test_a_registration_without_ids_is_refused_naming_the_field(actor):
    with pytest.raises(RegistrationRefused) as refused:
        patient_register(actor=actor, registration=registration(ids=()))
    assert (refused.value.field, refused.value.problem) == ("ids", "missing")
    assert not Patient.objects.exists() and not Owner.objects.exists()


def test_the_hl7_adt_adapter_reaches_the_patients_app_only_through_the_registration_api():
    # The walk of an ADT message crosses into patients once: the adapter unpacks the message,
    # calls patients/registration.py and maps the answer back. A direct import of a selector,
    # a crosswalk function or a model would let a rule creep back into the adapter, where REST
    # or an import cannot reuse it. Read from the source (imports under TYPE_CHECKING name
    # types for hints only and are left out), as an import-linter contract would.
    source = Path(__file__).resolve().parent.parent / "integrations" / "hl7" / "inbound_adt.py"
    tree = ast.parse(source.read_text())
    hints_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    imported = set()
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert {m for m in imported if m.split(".")[0] == "patients"} == {"patients.registration"}
