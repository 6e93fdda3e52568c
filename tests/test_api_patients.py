"""Owners and patients over REST: contracts, upsert by the client's ids, ETags, errors."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from integrations.api.clients import api_client_create
from patients.models import CodeMapping, Patient
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(actor):
    client, key = api_client_create(actor=actor, name="Acme PMS", scopes=["patients:write", "owners:write"])
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return http


BISCUIT = {"name": "Biscuit", "species": {"code": "448771007"}, "breed": {"code": "62137007"}, "sex": "M",
           "neutered": "ALTERED", "birth_date": "2019-04-02", "microchip": "985141000123456", "weight_kg": "31.4"}  # fmt: skip


def test_create_then_read_the_whole_body(api):
    owner = api.post(
        "/api/v1/owners",
        {"family_name": "Hartley", "given_name": "Jane", "phone": "01632 960123"},
        format="json",
    )
    assert owner.status_code == 201, owner.json()
    created = api.post(
        "/api/v1/patients", {**BISCUIT, "owners": [{"owner": owner.json()["id"]}]}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    patient = Patient.objects.get()
    assert body == {
        "id": patient.pk, "patient_id": patient.patient_id, "name": "Biscuit",
        "species": {"code": "448771007", "system": "SCT", "name": "Dog"},
        "breed": {"code": "62137007", "system": "SCT", "name": patient.breed.name},
        "breed_text": "", "sex": "M", "neutered": "ALTERED", "birth_date": "2019-04-02", "birth_date_estimated": False,
        "colour": "", "microchip": "985141000123456", "deceased": False, "deceased_on": None, "notes": "",
        "weight_kg": "31.400", "owners": [{"owner": owner.json()["id"], "role": "owner", "primary": True}],
        "updated": body["updated"], "external_ids": [],
    }  # fmt: skip
    assert created["ETag"]
    assert api.get(f"/api/v1/patients/{patient.pk}").json() == body
    assert AuditEntry.objects.filter(channel="api", actor="Acme PMS", action="create").count() == 2


def test_upsert_by_the_clients_own_id(api):
    first = api.put("/api/v1/patients/external/PMS-1", BISCUIT, format="json")
    assert first.status_code == 201, first.json()
    again = api.put("/api/v1/patients/external/PMS-1", {"name": "Biscuit II"}, format="json")
    assert again.status_code == 200 and again.json()["name"] == "Biscuit II"
    assert Patient.objects.count() == 1
    assert again.json()["external_ids"] == [{"system": "api:Acme PMS", "value": "PMS-1"}]
    assert api.get("/api/v1/patients/external/PMS-1").json()["id"] == first.json()["id"]


def test_the_clients_species_code_goes_through_the_crosswalk(api, dog):
    CodeMapping.objects.create(system="acme", kind="species", external_code="K9", species=dog)
    ok = api.post(
        "/api/v1/patients", {"name": "Rex", "species": {"code": "K9", "system": "acme"}}, format="json"
    )
    assert ok.status_code == 201 and ok.json()["species"]["code"] == "448771007"
    bad = api.post(
        "/api/v1/patients", {"name": "Rex", "species": {"code": "DRAGON", "system": "acme"}}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "error": {
            "code": "validation_error",
            "message": "Invalid input: species.",
            "fields": {"species": ["Unknown species code DRAGON in acme; map it in the crosswalk."]},
        }
    }


@pytest.mark.parametrize(
    "body, field",
    [
        ({"species": {"code": "448771007"}}, "name"),
        ({**BISCUIT, "birth_date": "2019-13-45"}, "birth_date"),
        ({**BISCUIT, "sex": "X"}, "sex"),
        ({**BISCUIT, "weight_kg": "-3"}, "weight_kg"),
        ({**BISCUIT, "breed": {"code": "35354009"}}, "breed"),  # not a breed code
    ],
)
def test_bad_fields_get_400_naming_them_and_nothing_is_saved(api, body, field):
    response = api.post("/api/v1/patients", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Patient.objects.exists()


def test_a_service_refusal_is_a_400_too(api):
    api.post("/api/v1/patients", BISCUIT, format="json")
    response = api.post("/api/v1/patients", {**BISCUIT, "name": "Other"}, format="json")  # the same microchip
    assert response.status_code == 400 and "microchip" in str(response.json()["error"]["fields"])


def test_if_match_stops_a_stale_write(api):
    created = api.post("/api/v1/patients", BISCUIT, format="json")
    url, tag = f"/api/v1/patients/{created.json()['id']}", created["ETag"]
    first = api.patch(url, {"colour": "yellow"}, format="json", HTTP_IF_MATCH=tag)
    assert first.status_code == 200 and first["ETag"] != tag
    stale = api.patch(url, {"colour": "black"}, format="json", HTTP_IF_MATCH=tag)
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "precondition_failed"
    assert Patient.objects.get().colour == "yellow"


def test_updated_since_and_cursor_pages(api):
    for n in range(5):
        api.put(
            f"/api/v1/patients/external/P{n}", {**BISCUIT, "microchip": f"98514100000000{n}"}, format="json"
        )
    page = api.get("/api/v1/patients", {"page_size": 2}).json()
    names, pages = [p["id"] for p in page["results"]], 1
    while page["next"]:
        page = api.get(page["next"]).json()
        names += [p["id"] for p in page["results"]]
        pages += 1
    assert len(names) == len(set(names)) == 5 and pages == 3
    last = Patient.objects.order_by("updated").last()
    since = api.get("/api/v1/patients", {"updated_since": last.updated.isoformat()}).json()["results"]
    assert [p["id"] for p in since] == [last.pk]
    bad = api.get("/api/v1/patients", {"updated_since": "yesterday"})
    assert bad.status_code == 400 and "updated_since" in bad.json()["error"]["fields"]


def test_search_finds_by_microchip(api):
    api.post("/api/v1/patients", BISCUIT, format="json")
    assert [
        p["name"] for p in api.get("/api/v1/patients", {"search": "985141000123456"}).json()["results"]
    ] == ["Biscuit"]


def test_a_read_scope_cannot_write(actor):
    _, key = api_client_create(actor=actor, name="Reader", scopes=["patients:read"])
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert http.get("/api/v1/patients").status_code == 200
    assert http.post("/api/v1/patients", BISCUIT, format="json").status_code == 403


def test_not_found_is_a_404_in_the_error_shape(api):
    response = api.get("/api/v1/patients/999999")
    assert response.status_code == 404 and response.json() == {
        "error": {"code": "not_found", "message": "No such patient."}
    }


@pytest.fixture
def owners_refused():
    """The database refuses every owner link (a trigger: a real failure past validation)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_ownership_refused() RETURNS trigger AS $$"
                " BEGIN RAISE EXCEPTION 'owner links refused'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_ownership_refused BEFORE INSERT OR UPDATE ON patients_ownership"
                " FOR EACH ROW EXECUTE FUNCTION test_ownership_refused()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER test_ownership_refused BEFORE INSERT ON patients_ownership"
                " BEGIN SELECT RAISE(ABORT, 'owner links refused'); END"
            )
    # (Made inside the test's transaction: gone with it.)


def test_an_animal_whose_owners_cannot_be_linked_is_not_created_nor_changed(
    api, make_owner, make_patient, request
):
    owner = make_owner("Hartley")
    pepper = make_patient("Pepper")
    request.getfixturevalue("owners_refused")
    api.raise_request_exception = False  # the refusal is the database's: a 500, and nothing saved
    link = {"owners": [{"owner": owner.pk}]}
    assert api.post("/api/v1/patients", {**BISCUIT, **link}, format="json").status_code == 500
    assert api.put("/api/v1/patients/external/PMS-9", {**BISCUIT, **link}, format="json").status_code == 500
    assert list(Patient.objects.values_list("name", flat=True)) == ["Pepper"]
    assert (
        api.patch(f"/api/v1/patients/{pepper.pk}", {"name": "Pepper II", **link}, format="json").status_code
        == 500
    )
    pepper.refresh_from_db()
    assert (pepper.name, pepper.owners.count()) == ("Pepper", 0)
    assert not AuditEntry.objects.filter(action="update", object_id=str(pepper.pk)).exists()
