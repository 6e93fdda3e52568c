"""Modality Worklist matching over the database, and the items it returns (PS3.4 Annex K).

Table-driven: each row is a query a modality sends and the animals it must find.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils.timezone import override
from pydicom.dataset import Dataset

from imaging.dicom.records.datasets import worklist_elements, worklist_item, worklist_response
from imaging.dicom.records.matching import MatchingError, unmatched_keys
from imaging.orders import services as orders
from imaging.orders.worklist import worklist_items, worklist_rows
from patients.services import weight_record

TODAY = datetime(2026, 11, 23, tzinfo=UTC)


def at(days, hh, mm=0):
    return TODAY + timedelta(days=days, hours=hh, minutes=mm)


def query(sps=None, **top):
    ds = Dataset()
    for keyword, value in top.items():
        setattr(ds, keyword, value)
    if sps is not None:
        item = Dataset()
        for keyword, value in sps.items():
            setattr(item, keyword, value)
        ds.ScheduledProcedureStepSequence = [item]
    return ds


@pytest.fixture
def clinic(make_owner, make_patient, make_order, actor, labrador, cat):
    hartley, ng = make_owner("Hartley", given_name="Jo"), make_owner("Ng")
    kennels = make_owner("", kind="organisation", organisation_name="Greenfield Kennels")
    animals = {
        "Biscuit": make_patient("Biscuit", owner=hartley, breed=labrador, microchip="985141000123456", sex="F",
                                neutered="ALTERED", birth_date=datetime(2019, 4, 2).date()),
        "Tiddles": make_patient("Tiddles", owner=ng, species=cat),
        "Rex": make_patient("Rex", owner=kennels, breed_text="Collie cross"),
        "Molly": make_patient("Molly", owner=hartley),
        "Pip": make_patient("Pip", owner=hartley),
    }  # fmt: skip
    placed = {
        "Biscuit": make_order(animals["Biscuit"], "DX-THX2", at(0, 10), referring_vet="Okafor^Ada",
                              performing_vet="Lee^Sam", weight_kg="28.5", reason="Coughing for two weeks"),
        "Tiddles": make_order(animals["Tiddles"], "US-ABD", at(0, 14, 30)),
        "Rex": make_order(animals["Rex"], "CT-HEAD", at(1, 9)),
        "Molly": make_order(animals["Molly"], "DX-HIPS", at(-1, 16)),
        "Pip": make_order(animals["Pip"], "DX-STIF", at(0, 11)),
    }  # fmt: skip
    orders.order_status_set(actor=actor, order=placed["Pip"], status="completed")
    return placed


def found(identifier):
    return [order.patient.name for order in worklist_items(identifier=identifier)]


CASES = [
    (
        "a DR room's usual query: its AE, its modality, today",
        query(
            sps={
                "ScheduledStationAETitle": "DRROOM",
                "Modality": "DX",
                "ScheduledProcedureStepStartDate": "20261123",
            }
        ),
        ["Biscuit"],
    ),
    (
        "an open date range from today",
        query(sps={"ScheduledStationAETitle": "DRROOM", "ScheduledProcedureStepStartDate": "20261123-"}),
        ["Biscuit"],
    ),
    (
        "an open date range until yesterday",
        query(sps={"ScheduledProcedureStepStartDate": "-20261122"}),
        ["Molly"],
    ),
    (
        "a closed date range",
        query(sps={"ScheduledProcedureStepStartDate": "20261122-20261123"}),
        ["Molly", "Biscuit", "Tiddles"],
    ),
    (
        "today between 12:00 and 16:00",
        query(
            sps={
                "ScheduledProcedureStepStartDate": "20261123",
                "ScheduledProcedureStepStartTime": "1200-1600",
            }
        ),
        ["Tiddles"],
    ),
    (
        "combined date-time range: yesterday 15:00 to today 11:00",
        query(
            sps={
                "ScheduledProcedureStepStartDate": "20261122-20261123",
                "ScheduledProcedureStepStartTime": "1500-1100",
            }
        ),
        ["Molly", "Biscuit"],
    ),
    (
        "an hour given as HH covers the whole hour",
        query(sps={"ScheduledProcedureStepStartDate": "20261123", "ScheduledProcedureStepStartTime": "-10"}),
        ["Biscuit"],
    ),
    ("ACR-NEMA dates still work", query(sps={"ScheduledProcedureStepStartDate": "2026.11.24"}), ["Rex"]),
    ("owner family name prefix, any case", query(PatientName="hartley*"), ["Molly", "Biscuit"]),
    ("the whole name", query(PatientName="Hartley^Biscuit"), ["Biscuit"]),
    ("trailing empty name components do not matter", query(PatientName="HARTLEY^BISCUIT^^"), ["Biscuit"]),
    ("the animal's name anywhere", query(PatientName="*tid*"), ["Tiddles"]),
    ("a single-character wildcard", query(PatientName="H?RTLEY^*Y"), ["Molly"]),
    ("an organisation owner", query(PatientName="greenfield*"), ["Rex"]),
    ("a single name without wildcard is the whole value", query(PatientName="Hartley"), []),
    ("the modality alone", query(sps={"Modality": "US"}), ["Tiddles"]),
    ("the performing vet", query(sps={"ScheduledPerformingPhysicianName": "lee*"}), ["Biscuit"]),
    ("the referring vet", query(ReferringPhysicianName="OKAFOR^ADA"), ["Biscuit"]),
    (
        "an empty query is universal, and done orders are left out",
        query(PatientName="", sps={}),
        ["Molly", "Biscuit", "Tiddles", "Rex"],
    ),
    (
        "a query for a step status finds done orders",
        query(sps={"ScheduledProcedureStepStatus": "COMPLETED"}),
        ["Pip"],
    ),
    (
        "a station wildcard",
        query(sps={"ScheduledStationAETitle": "*ROOM", "ScheduledProcedureStepStartDate": "20261124"}),
        ["Rex"],
    ),
]


@pytest.mark.parametrize("identifier, names", [(q, n) for _, q, n in CASES], ids=[c[0] for c in CASES])
def test_worklist_matching(clinic, identifier, names):
    assert found(identifier) == names


@pytest.mark.parametrize("identifier, names", [(q, n) for _, q, n in CASES], ids=[c[0] for c in CASES])
def test_the_listeners_rows_are_the_matching_orders_in_worklist_order(clinic, identifier, names):
    """orders.worklist.worklist_rows (the C-FIND handler's read: the match, then the rows by id)
    answers what worklist_items does."""
    assert [row["patient__name"] for row in worklist_rows(identifier=identifier)] == names


def test_a_name_prefix_with_like_wildcards_in_it_matches_them_as_characters(
    clinic, make_owner, make_patient, make_order
):
    for family, animal in [("Per%cy", "Dot"), ("Perkins", "Ned"), ("Pe_ry", "Flo"), ("Perry", "Gus")]:
        make_order(make_patient(animal, owner=make_owner(family)), "DX-THX2", at(0, 15))
    assert found(query(PatientName="PER%*")) == ["Dot"]
    assert [row["patient__name"] for row in worklist_rows(identifier=query(PatientName="pe_*"))] == ["Flo"]


def test_matching_by_ids(clinic):
    biscuit, tiddles = clinic["Biscuit"], clinic["Tiddles"]
    assert found(query(AccessionNumber=biscuit.accession_number)) == ["Biscuit"]
    assert found(query(PatientID=tiddles.patient.patient_id)) == ["Tiddles"]
    assert found(query(RequestedProcedureID=tiddles.requested_procedure_id)) == ["Tiddles"]
    assert found(query(sps={"ScheduledProcedureStepID": biscuit.scheduled_step_id})) == ["Biscuit"]
    uids = f"{biscuit.study_instance_uid}\\{tiddles.study_instance_uid}"
    assert found(query(StudyInstanceUID=uids)) == ["Biscuit", "Tiddles"]


def test_dates_are_the_clinics_local_ones(clinic, settings):
    # 2026-11-23 10:00 UTC is 23:00 on the 23rd in Auckland (NZDT, UTC+13).
    with override("Pacific/Auckland"):
        assert "Biscuit" in found(query(sps={"ScheduledProcedureStepStartDate": "20261123"}))
        assert "Biscuit" not in found(query(sps={"ScheduledProcedureStepStartDate": "20261124"}))
        step = worklist_item(clinic["Biscuit"]).ScheduledProcedureStepSequence[0]
        assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
            "20261123",
            "230000",
        )


@pytest.mark.parametrize(
    "identifier, message",
    [
        (query(sps={"ScheduledProcedureStepStartDate": "2026113x"}), "ScheduledProcedureStepStartDate"),
        (
            query(
                sps={"ScheduledProcedureStepStartDate": "20261123", "ScheduledProcedureStepStartTime": "2561"}
            ),
            "ScheduledProcedureStepStartTime",
        ),
        (query(sps={"ScheduledProcedureStepStartDate": "20261101-20261102-20261103"}), "not a range"),
        (query(StudyInstanceUID="1.2.abc"), "StudyInstanceUID"),
        (query(sps={"ScheduledProcedureStepStatus": "FINISHED"}), "ScheduledProcedureStepStatus"),
    ],
)
def test_a_malformed_query_names_the_attribute(clinic, identifier, message):
    with pytest.raises(MatchingError, match=message):
        found(identifier)


def test_two_step_items_are_refused(clinic):
    ds = query(sps={"Modality": "DX"})
    ds.ScheduledProcedureStepSequence.append(Dataset())
    with pytest.raises(MatchingError, match="one item"):
        found(ds)


def test_keys_we_do_not_match_on_are_reported(clinic):
    assert unmatched_keys(query(PatientSex="F", sps={"Modality": "DX", "ScheduledProcedureStepLocation": "X"})) == [
        "PatientSex", "ScheduledProcedureStepLocation",
    ]  # fmt: skip
    assert unmatched_keys(query(PatientName="A*", PatientSex="", sps={"Modality": "DX"})) == []


def test_the_item_carries_the_animal_the_owner_and_the_order(clinic, settings):
    order = clinic["Biscuit"]
    item = worklist_item(order)
    assert str(item.PatientName) == "Hartley^Biscuit"
    assert item.PatientID == order.patient.patient_id
    assert item.IssuerOfPatientID == settings.CLINIC_NAME
    assert (item.PatientBirthDate, item.PatientSex, item.PatientSexNeutered) == ("20190402", "F", "ALTERED")
    assert item.PatientSpeciesDescription == "Canis lupus familiaris"
    species = item.PatientSpeciesCodeSequence[0]
    assert (species.CodeValue, species.CodingSchemeDesignator) == ("448771007", "SCT")
    breed = item.PatientBreedCodeSequence[0]
    assert (breed.CodeValue, breed.CodeMeaning) == ("62137007", "Labrador retriever dog breed")
    assert item.PatientBreedDescription == "Labrador retriever"
    assert (str(item.ResponsiblePerson), item.ResponsiblePersonRole) == ("Hartley^Jo", "OWNER")
    assert item.PatientWeight == "28.5"
    chip = item.OtherPatientIDsSequence[0]
    assert (chip.PatientID, chip.TypeOfPatientID) == ("985141000123456", "RFID")
    assert (item.AccessionNumber, item.RequestedProcedureID) == (
        order.accession_number,
        order.requested_procedure_id,
    )
    assert item.StudyInstanceUID == order.study_instance_uid
    assert item.RequestedProcedureDescription == "Thorax 2 views (lateral + VD/DV)"
    assert str(item.ReferringPhysicianName) == "Okafor^Ada"
    step = item.ScheduledProcedureStepSequence[0]
    assert (step.ScheduledStationAETitle, step.Modality, step.ScheduledStationName) == ("DRROOM", "DX", "DR1")
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261123",
        "100000",
    )
    assert (step.ScheduledProcedureStepID, step.ScheduledProcedureStepStatus) == (
        order.scheduled_step_id,
        "SCHEDULED",
    )
    assert str(step.ScheduledPerformingPhysicianName) == "Lee^Sam"
    protocol = step.ScheduledProtocolCodeSequence[0]
    assert (protocol.CodeValue, protocol.CodingSchemeDesignator) == ("DX-THX2", "99VETPACS")


def test_an_organisation_owner_is_the_responsible_organization(clinic):
    item = worklist_item(clinic["Rex"])
    assert (str(item.PatientName), item.ResponsibleOrganization, item.ResponsiblePerson) == (
        "Greenfield Kennels^Rex", "Greenfield Kennels", "",
    )  # fmt: skip
    assert (item.PatientBreedDescription, list(item.PatientBreedCodeSequence)) == ("Collie cross", [])
    assert "ResponsiblePersonRole" not in item


def test_the_response_has_exactly_the_keys_asked_for(clinic):
    identifier = query(
        PatientName="", PatientID="", PatientSpeciesDescription="", MedicalAlerts="",
        sps={"ScheduledStationAETitle": "DRROOM", "ScheduledProcedureStepStartDate": "", "Modality": ""},
    )  # fmt: skip
    identifier.PatientBreedCodeSequence = []
    response = worklist_response(identifier, clinic["Biscuit"])
    assert [e.keyword for e in response] == [
        "PatientName", "PatientID", "MedicalAlerts", "PatientSpeciesDescription",
        "PatientBreedCodeSequence", "ScheduledProcedureStepSequence",
    ]  # fmt: skip
    assert response.MedicalAlerts is None or response.MedicalAlerts == ""
    assert response.PatientBreedCodeSequence[0].CodeValue == "62137007"  # empty sequence: all of it
    step = response.ScheduledProcedureStepSequence[0]
    assert [e.keyword for e in step] == [
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
    ]
    assert "SpecificCharacterSet" not in response


def test_non_ascii_names_come_with_the_utf8_character_set(make_owner, make_patient, make_order):
    order = make_order(make_patient("Zoë", owner=make_owner("Müller")))
    response = worklist_response(query(PatientName=""), order)
    assert response.SpecificCharacterSet == "ISO_IR 192"
    assert str(response.PatientName) == "Müller^Zoë"


def test_two_statements_answer_a_c_find_however_many_orders_match(clinic, django_assert_num_queries):
    """The matching one, then the rows by id (orders.worklist.worklist_rows)."""
    worklist_rows(identifier=query())  # the rows-by-id statement is compiled once per process
    with django_assert_num_queries(2):
        items = [worklist_elements(row).dataset() for row in worklist_rows(identifier=query())]
    assert len(items) == 4


def test_the_joined_owner_and_weight_are_the_records(clinic, make_patient, make_order, actor):
    """worklist_rows reads the primary owner and last weight in its one row; the answer must
    be what the animal's record says (Patient.primary_owner, Patient.current_weight)."""
    ownerless = make_order(make_patient("Stray", owner=None), "DX-THX2", at(0, 12))
    weighed = clinic["Tiddles"]
    weight_record(
        actor=actor, patient=weighed.patient, kg="4.1", measured_on=TODAY.date() - timedelta(days=30)
    )
    weight_record(
        actor=actor, patient=weighed.patient, kg="4.35", measured_on=TODAY.date() - timedelta(days=2)
    )
    orders = list(worklist_items(identifier=query()))
    joined = {order.patient.name: worklist_elements(row).dataset()
              for order, row in zip(orders, worklist_rows(identifier=query()), strict=True)}  # fmt: skip
    for order in orders:
        assert joined[order.patient.name] == worklist_item(type(order).objects.get(pk=order.pk)), (
            order.patient.name
        )
    assert joined["Tiddles"].PatientWeight == "4.35"
    assert str(joined["Stray"].PatientName) == "^Stray" and joined["Stray"].ResponsiblePerson == ""
    assert ownerless.weight_kg is None and joined["Stray"].PatientWeight is None
