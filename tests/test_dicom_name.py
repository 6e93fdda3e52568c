"""The animal's DICOM Patient's Name (PS3.3 C.7.1.1.1.1, PN as PS3.5 6.2), built once in
patients/names.py and the same wherever it is written."""

import pytest
from pydicom.dataset import Dataset

from imaging.dicom.records.datasets import animal_name_agrees, patient_attributes, worklist_elements
from imaging.orders.worklist import worklist_rows
from patients import names
from patients.models import Patient

LONG_OWNER = "Featherstonehaugh-Cholmondeley-Marjoribanks Veterinary Trust Ltd"  # 64
LONG_ANIMAL = "Champion Bramblewood Sir Reginald Fluffington of the Northern Fells"  # 67

NAMES = [
    # (owner family name, or organisation; animal's name) -> Patient's Name
    ("Hartley", "Biscuit", "Hartley^Biscuit"),
    ("Greenfield Kennels", "Rex", "Greenfield Kennels^Rex"),
    ("", "Stray", "^Stray"),
    ("Smith^Jones", "Rex=2", "Smith Jones^Rex 2"),  # component and group delimiters
    ("O\\Brien", "Pip\r\n", "O Brien^Pip"),  # the value delimiter; CR/LF are not allowed in PN
    (" Ng ", " Tiddles ", "Ng^Tiddles"),
    (LONG_OWNER, "Biscuit", LONG_OWNER[:56].rstrip() + "^Biscuit"),  # 64 per component group
    ("Hartley", LONG_ANIMAL, "^" + LONG_ANIMAL[:63].rstrip()),  # the animal's name comes first
]


@pytest.mark.parametrize(("family", "animal", "expected"), NAMES)
def test_the_patient_name_is_owner_family_and_animal_within_pn_rules(family, animal, expected):
    name = names.patient_name(family, animal)
    assert name == expected
    assert len(name) <= names.PN_GROUP_MAX and name.count("^") == 1
    assert not set("=\\\r\n") & set(name)
    assert names.name_key(family, animal) == expected.upper()


@pytest.fixture
def awkward(make_owner, make_patient, make_order):
    """Animals whose names need the rules, each with an order on the worklist."""
    people = make_owner("Smith^Jones", given_name="A=B")
    trust = make_owner("", kind="organisation", organisation_name=LONG_OWNER)
    animals = [
        make_patient("Rex\\2", owner=people),
        make_patient("Biscuit", owner=trust),
        make_patient(LONG_ANIMAL[:64], owner=people),  # as long as the record allows
        make_patient("Stray"),
    ]
    for patient in animals:
        make_order(patient)
    return animals


def test_the_record_its_key_the_worklist_and_rewritten_images_name_the_animal_alike(awkward):
    for patient in awkward:
        patient = Patient.objects.get(pk=patient.pk)
        owner = patient.primary_owner
        expected = names.patient_name(owner.dicom_family_name if owner else "", patient.name)
        query = Dataset()
        query.PatientID = patient.patient_id
        [row] = worklist_rows(identifier=query)
        item = worklist_elements(row).dataset()
        assert (patient.dicom_name, patient.dicom_name_key) == (expected, expected.upper()), patient.name
        assert str(item.PatientName) == expected == str(patient_attributes(patient).PatientName), patient.name
        assert animal_name_agrees(str(item.PatientName), patient), patient.name
        if owner is not None and owner.kind != "organisation":
            assert str(item.ResponsiblePerson) == "Smith Jones^A B"


def test_the_worklist_finds_an_animal_by_the_name_it_shows(awkward):
    query = Dataset()
    query.PatientName = "SMITH JONES^REX 2"
    assert [row["patient__name"] for row in worklist_rows(identifier=query)] == ["Rex\\2"]
