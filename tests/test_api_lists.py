"""The patient and study lists: whole rows, every related field, as the detail answers show them.

The lists read their pages as plain rows (integrations/api/rows.py) while a single record goes
through the serializer; these tests pin both to the same body, field by field, including what
only the related tables hold (owners, external ids, the newest weight, coded breed, series
modalities, counts, thumbnails), and walk the cursor pages.
"""

from datetime import UTC, date, datetime, time

import pytest

from imaging.models import Instance, Series, Study
from patients.models import Patient
from patients.services import ownership_set, weight_record
from tests.test_api_queries import api  # noqa: F401  (the fixture: an all-scopes client)

pytestmark = pytest.mark.django_db


@pytest.fixture
def biscuit(actor, make_owner, make_patient, labrador):
    """A labrador with a primary owner and a co-owner, two external ids, two weights (the newer
    one counts), and every optional field filled."""
    owner = make_owner("Hartley", mobile="07700 900123")
    patient = make_patient(
        "Biscuit", owner=owner, breed=labrador, microchip="985141000123456", sex="M", neutered="ALTERED",
        birth_date=date(2019, 4, 2), birth_date_estimated=True, colour="yellow", notes="Nervous at the vet",
    )  # fmt: skip
    co_owner = make_owner("Okafor")
    ownership_set(actor=actor, patient=patient, owner=co_owner, role="co-owner", primary=False)
    patient.external_ids.create(system="api:Acme PMS", value="P-1")
    patient.external_ids.create(system="hl7:VETSYS", value="V-77")
    weight_record(actor=actor, patient=patient, kg="30.5", measured_on=date(2026, 1, 5))
    weight_record(actor=actor, patient=patient, kg="31.25", measured_on=date(2026, 6, 1))
    return patient, owner, co_owner


def test_a_patient_row_in_the_list_is_the_whole_record(api, biscuit, make_patient, cat):
    patient, owner, co_owner = biscuit
    Patient.objects.filter(pk=patient.pk).update(deceased=True, deceased_on=date(2026, 11, 1))
    patient.refresh_from_db()
    stray = make_patient("Tom", species=cat, breed_text="Domestic shorthair")
    rows = api.get("/api/v1/patients").json()["results"]
    assert rows == [
        {"id": patient.pk, "patient_id": patient.patient_id, "name": "Biscuit", "breed_text": "", "sex": "M",
         "neutered": "ALTERED", "birth_date": "2019-04-02", "birth_date_estimated": True, "colour": "yellow",
         "microchip": "985141000123456", "deceased": True, "deceased_on": "2026-11-01", "notes": "Nervous at the vet",
         "owners": [{"owner": owner.pk, "role": "owner", "primary": True},
                    {"owner": co_owner.pk, "role": "co-owner", "primary": False}],
         "updated": patient.updated.isoformat().replace("+00:00", "Z"),
         "species": {"code": "448771007", "system": "SCT", "name": "Dog"},
         "breed": {"code": "62137007", "system": "SCT", "name": patient.breed.name},
         "weight_kg": "31.250",
         "external_ids": [{"system": "api:Acme PMS", "value": "P-1"}, {"system": "hl7:VETSYS", "value": "V-77"}]},
        {"id": stray.pk, "patient_id": stray.patient_id, "name": "Tom", "breed_text": "Domestic shorthair", "sex": "O",
         "neutered": "", "birth_date": None, "birth_date_estimated": False, "colour": "", "microchip": "",
         "deceased": False, "deceased_on": None, "notes": "", "owners": [],
         "updated": stray.updated.isoformat().replace("+00:00", "Z"),
         "species": {"code": "448169003", "system": "SCT", "name": "Cat"}, "breed": None, "weight_kg": None,
         "external_ids": []},
    ]  # fmt: skip
    # The same bytes as the record's own answer, key order included.
    listed = api.get("/api/v1/patients", {"search": "hartley biscuit"})
    detail = api.get(f"/api/v1/patients/{patient.pk}")
    assert listed.json()["results"] == [detail.json()]
    assert detail.content.decode() in listed.content.decode()


def test_merged_animals_are_not_listed(api, biscuit, make_patient, actor):
    from patients.services import patient_merge

    patient, owner, _ = biscuit
    duplicate = make_patient("Biscuit", owner=owner)
    patient_merge(actor=actor, source=duplicate, target=patient)
    assert [p["id"] for p in api.get("/api/v1/patients").json()["results"]] == [patient.pk]
    assert [p["id"] for p in api.get("/api/v1/patients", {"search": "biscuit"}).json()["results"]] == [
        patient.pk
    ]


def test_the_cursor_walks_a_search_forwards_and_back(api, make_owner, make_patient):
    owner = make_owner("Hartley")
    ids = [make_patient(f"Biscuit{n}", owner=owner).pk for n in range(7)]
    make_patient("Rex")  # not a Hartley
    page = api.get("/api/v1/patients", {"search": "hartley", "page_size": 3}).json()
    seen, pages = [p["id"] for p in page["results"]], [page]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [p["id"] for p in page["results"]]
        pages.append(page)
    assert seen == sorted(ids) and len(pages) == 3 and pages[0]["previous"] is None
    back = api.get(pages[-1]["previous"]).json()
    assert back["results"] == pages[1]["results"]
    bad = api.get("/api/v1/patients", {"cursor": "not-a-cursor"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"


def test_a_study_row_in_the_list_is_the_whole_record(api, biscuit, make_order, settings):
    patient, _, _ = biscuit
    order = make_order(patient)
    received = datetime(2026, 11, 23, 10, 20, 5, 123456, tzinfo=UTC)
    study = Study.objects.create(
        study_instance_uid="1.2.826.0.1.1", patient=patient, order=order, link="order",
        accession_number=order.accession_number, study_date=date(2026, 11, 23), study_time=time(10, 15, 30),
        description="Thorax", referring_physician="Dr Okafor", received_at=received, updated=received,
    )  # fmt: skip
    # Series out of number order; the thumbnail is the lowest-numbered series that has one.
    shapes = [(3, "DX", "thumbs/c.png", 1), (1, "US", "", 2), (2, "DX", "thumbs/b.png", 3), (4, "", "", 0)]
    made = {}
    for number, modality, thumbnail, instances in shapes:
        series = Series.objects.create(study=study, series_instance_uid=f"1.2.826.0.1.1.{number}", series_number=number,
                                       modality=modality, thumbnail_key=thumbnail)  # fmt: skip
        made[number] = series
        for i in range(instances):
            Instance.objects.create(series=series, sop_instance_uid=f"{series.series_instance_uid}.{i}", sop_class_uid="1.2",
                                    transfer_syntax_uid="1.2", file_size=10, storage_key=f"k/{number}/{i}")  # fmt: skip
    empty = Study.objects.create(
        study_instance_uid="1.2.826.0.1.2", patient=patient, received_at=received, updated=received
    )
    rows = api.get("/api/v1/studies", {"patient": patient.pk}).json()["results"]
    site = settings.SITE_URL
    assert rows == [
        {"id": study.pk, "study_instance_uid": "1.2.826.0.1.1", "patient": patient.pk, "order": order.pk, "link": "order",
         "accession_number": order.accession_number, "study_date": "2026-11-23", "study_time": "10:15:30",
         "description": "Thorax", "referring_physician": "Dr Okafor", "modalities": ["DX", "US"], "series_count": 4,
         "instance_count": 6, "received_at": "2026-11-23T10:20:05.123456Z",
         "viewer_url": f"{site}/studies/{study.pk}/", "thumbnail_url": f"{site}/studies/series/{made[2].pk}/thumbnail.png",
         "updated": "2026-11-23T10:20:05.123456Z"},
        {"id": empty.pk, "study_instance_uid": "1.2.826.0.1.2", "patient": patient.pk, "order": None, "link": "unmatched",
         "accession_number": "", "study_date": None, "study_time": None, "description": "", "referring_physician": "",
         "modalities": [], "series_count": 0, "instance_count": 0, "received_at": "2026-11-23T10:20:05.123456Z",
         "viewer_url": f"{site}/studies/{empty.pk}/", "thumbnail_url": None, "updated": "2026-11-23T10:20:05.123456Z"},
    ]  # fmt: skip
    for row in rows:
        detail = api.get(f"/api/v1/studies/{row['id']}")
        assert detail.json() == row and detail.content.decode() in api.get("/api/v1/studies").content.decode()
    assert [s["id"] for s in api.get("/api/v1/studies", {"modality": "us"}).json()["results"]] == [study.pk]
    assert [s["id"] for s in api.get("/api/v1/studies", {"date": "2026-11-23"}).json()["results"]] == [
        study.pk
    ]
    assert api.get("/api/v1/studies", {"patient": patient.pk + 1000}).json()["results"] == []
