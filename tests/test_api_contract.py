"""The REST contract at its edges: input no field can hold is a 4xx naming it, never a 500; what
is answered is what the schema says."""

import io
from datetime import date, time

import pytest
from rest_framework.test import APIClient

from imaging.models import ImagingOrder, Study
from integrations.api.clients import api_client_create
from integrations.api.parsers import MAX_DEPTH, JSONParser, RequestTooLarge
from patients.models import Owner, Patient, Visit

pytestmark = pytest.mark.django_db

NUL = "Text may not contain the NUL character (U+0000)."


@pytest.fixture
def api(actor):
    _, key = api_client_create(actor=actor, name="Acme PMS", scopes=["*"])
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return http


@pytest.fixture
def biscuit(make_owner, make_patient, stations):
    return make_patient("Biscuit", owner=make_owner("Hartley"))


def nul_refused(name):
    return {
        "error": {"code": "validation_error", "message": f"Invalid input: {name}.", "fields": {name: [NUL]}}
    }


@pytest.mark.parametrize(
    "url, name",
    [
        ("/api/v1/studies?accession_number=%00", "accession_number"),
        ("/api/v1/orders?accession_number=VP%0042", "accession_number"),
        ("/api/v1/patients?search=bis%00cuit", "search"),
        ("/api/v1/breeds?species=%00", "species"),
        ("/api/v1/crosswalk?system=acme%00", "system"),
        ("/api/v1/webhooks/deliveries?event=%00", "event"),
        ("/api/v1/patients/external/PMS%001", "path"),
    ],
)
def test_a_nul_in_a_query_parameter_or_the_path_is_a_400_naming_it(api, biscuit, url, name):
    response = api.get(url)
    assert (response.status_code, response.json()) == (400, nul_refused(name))


def test_a_nul_in_any_body_field_is_a_400_naming_it_and_nothing_is_written(api, biscuit):
    order = {"patient": biscuit.pk, "procedure": "DX-THX2", "scheduled_start": "2026-11-23T10:30:00Z"}
    for field, value in (("procedure", "DX-THX2\x00"), ("station", "\x00"), ("reason", "Cough\x00")):
        response = api.post("/api/v1/orders", {**order, field: value}, format="json")
        assert (response.status_code, response.json()) == (400, nul_refused(field))
    nested = api.post("/api/v1/patients", {"name": "Rex", "species": {"code": "448771007", "system": "S\x00CT"}},
                      format="json")  # fmt: skip
    assert (nested.status_code, nested.json()) == (400, nul_refused("species.system"))
    owner = api.put("/api/v1/owners/external/A-1", {"family_name": "Hart\x00ley"}, format="json")
    assert (owner.status_code, owner.json()) == (400, nul_refused("family_name"))
    key = api.patch(f"/api/v1/patients/{biscuit.pk}", {"\x00name": "Rex"}, format="json")
    assert (key.status_code, key.json()) == (400, nul_refused("\\x00name"))
    assert not ImagingOrder.objects.exists()
    assert list(Patient.objects.values_list("name", flat=True)) == ["Biscuit"]
    assert list(Owner.objects.values_list("family_name", flat=True)) == ["Hartley"]


def test_a_patch_naming_a_species_or_breed_without_a_system_means_ours(api, biscuit):
    response = api.patch(f"/api/v1/patients/{biscuit.pk}",
                         {"species": {"code": "448771007"}, "breed": {"code": "62137007"}}, format="json")  # fmt: skip
    assert response.status_code == 200, response.json()
    assert response.json()["breed"]["code"] == "62137007"
    biscuit.refresh_from_db()
    assert (biscuit.species.code, biscuit.breed.code) == ("448771007", "62137007")


def test_a_patch_naming_a_breed_without_a_code_is_a_400_naming_it(api, biscuit, labrador):
    response = api.patch(f"/api/v1/patients/{biscuit.pk}", {"breed": {}}, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (
        400,
        {"breed": {"code": ["This field is required."]}},
    )
    biscuit.refresh_from_db()
    assert biscuit.breed is None


def test_a_patch_naming_an_owner_without_a_role_makes_them_owner_and_one_without_an_owner_is_a_400(
    api, biscuit, make_owner
):
    keeper = make_owner("Marsh")
    response = api.patch(f"/api/v1/patients/{biscuit.pk}", {"owners": [{"owner": keeper.pk}]}, format="json")
    assert response.status_code == 200, response.json()
    assert biscuit.ownerships.get(owner=keeper).role == "owner"
    response = api.patch(f"/api/v1/patients/{biscuit.pk}", {"owners": [{"role": "keeper"}]}, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (
        400, {"owners": [{"owner": ["This field is required."]}]}
    )  # fmt: skip
    assert biscuit.ownerships.count() == 2


def test_a_body_nested_100000_deep_is_a_400_and_nothing_is_written(api):
    body = '{"name": "Rex", "species": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post("/api/v1/patients", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("JSON parse error")
    assert not Patient.objects.exists()


def test_a_body_nested_deeper_than_the_limit_is_a_400_naming_where(api):
    notes = {}
    for _ in range(MAX_DEPTH):
        notes = {"a": notes}
    response = api.post("/api/v1/patients", {"name": "Rex", "notes": notes}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["notes" + ".a" * (MAX_DEPTH - 1)]
    assert not Patient.objects.exists()


def test_a_body_over_the_limit_is_a_413_in_the_error_shape_and_nothing_is_written(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post(
        "/api/v1/patients", {"name": "Rex" * 400, "species": {"code": "448771007"}}, format="json"
    )
    assert (response.status_code, response.json()) == (
        413, {"error": {"code": "request_too_large", "message": "The request body is over 1,000 bytes."}}
    )  # fmt: skip
    assert not Patient.objects.exists()


def test_a_body_sent_without_a_length_is_read_no_further_than_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    stream = io.BytesIO(b'{"notes": "' + b"x" * 10_000_000 + b'"}')
    with pytest.raises(RequestTooLarge):
        JSONParser().parse(stream, "application/json")
    assert stream.tell() == 1001


def test_a_non_numeric_id_is_the_apis_json_404_with_debug_on_too(api, settings):
    settings.DEBUG = True
    for url in ("/api/v1/owners/abc", "/api/v1/patients/1x/", "/api/v1/nothing"):
        response = api.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
        assert response.json() == {
            "error": {"code": "not_found", "message": "There is nothing at this address."}
        }
    assert api.get("/api/schema").status_code == 301  # still redirected to /api/schema/


@pytest.mark.parametrize("value", ["null", "0", "-5", "1.5", "٣"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400(api, value):
    response = api.get("/api/v1/species", {"page_size": value})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["page_size"]


def test_a_page_size_over_the_most_gives_the_most(api, reference_data):
    assert len(api.get("/api/v1/breeds", {"page_size": "9" * 40}).json()["results"]) == 500


@pytest.mark.parametrize("url, name", [
    ("/api/v1/patients?updated_since=2026-02-30T10:00:00Z", "updated_since"),
    ("/api/v1/orders?date=2026-02-30", "date"),
    ("/api/v1/studies?date=2026-13-01", "date"),
])  # fmt: skip
def test_a_well_formed_date_that_does_not_exist_is_a_400(api, url, name):
    response = api.get(url)
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == [name]


def test_an_updated_since_with_any_iso_offset_is_answered_and_one_before_time_began_is_a_400(api, biscuit):
    """ISO 8601 offsets go to ±23:59; PostgreSQL's stop at ±15:59 (found by schemathesis: a 500)."""
    for url in ("/api/v1/owners", "/api/v1/patients"):
        response = api.get(url, {"updated_since": "0075-02-18T01:39:01-22:35"})
        assert response.status_code == 200 and len(response.json()["results"]) == 1, response.json()
    response = api.get("/api/v1/patients", {"updated_since": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["updated_since"]


def test_an_unlinked_study_is_shown_with_null_patient_and_order_as_the_schema_says(api):
    study = Study.objects.create(
        study_instance_uid="2.25.7", study_date=date(2026, 11, 23), study_time=time(10, 5, 3, 250000)
    )
    body = api.get(f"/api/v1/studies/{study.pk}").json()
    assert (body["patient"], body["order"], body["study_time"]) == (None, None, "10:05:03.250000")
    schema = api.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]["Study"][
        "properties"
    ]
    assert schema["patient"]["nullable"] and schema["order"]["nullable"]
    assert "format" not in schema["study_time"]  # RFC 3339's time has a zone; a DICOM TM has none


def test_request_and_response_schemas_are_apart_and_say_what_is_shown(api):
    schemas = api.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    shown, written = schemas["Patient"]["properties"], schemas["PatientRequest"]["properties"]
    assert {"id", "patient_id", "updated", "external_ids"} <= set(shown) and not {
        "id",
        "patient_id",
        "updated",
    } & set(written)
    for name in ("species", "breed", "weight_kg"):  # written and shown
        assert name in shown and name in written and not shown[name].get("writeOnly")
    assert (
        "name" in schemas["CodeField"]["properties"]
        and "name" not in schemas["CodeFieldRequest"]["properties"]
    )


@pytest.mark.parametrize("url, body, field", [
    ("/api/v1/owners", {"family_name": 42}, "family_name"),
    ("/api/v1/patients", {"name": "Rex", "species": {"code": 448771007}}, "species"),
    ("/api/v1/patients", {"name": "Rex", "species": {"code": "448771007"}, "deceased": "yes"}, "deceased"),
    ("/api/v1/patients", {"name": "Rex", "species": {"code": "448771007"}, "weight_kg": True}, "weight_kg"),
    ("/api/v1/visits", {"patient": "BISCUIT"}, "patient"),
])  # fmt: skip
def test_a_value_of_another_json_type_than_the_schema_says_is_a_400_naming_it(api, biscuit, url, body, field):
    if body.get("patient") == "BISCUIT":
        body = {"patient": str(biscuit.pk)}  # the id as a string
    response = api.post(url, body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"], response.json()
    assert (Patient.objects.count(), Owner.objects.count(), Visit.objects.count()) == (1, 1, 0)


def test_a_weight_sent_as_a_json_number_is_taken_and_the_request_schema_says_it_may_be(api):
    """PMS send weights as numbers; the request schema says a decimal string or a number."""
    response = api.post("/api/v1/patients", {"name": "Rex", "species": {"code": "448771007"}, "weight_kg": 31.4},
                        format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["weight_kg"] == "31.400"
    assert str(Patient.objects.get(name="Rex").weights.get().kg) == "31.400"
    schemas = api.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    written = schemas["PatientRequest"]["properties"]["weight_kg"]
    assert [kind["type"] for kind in written["oneOf"]] == ["string", "number"]
    assert schemas["Patient"]["properties"]["weight_kg"]["type"] == "string"  # shown as a string


@pytest.mark.parametrize("url, name", [
    ("/api/v1/patients?updated_since=", "updated_since"), ("/api/v1/orders?date=", "date"),
    ("/api/v1/studies?patient=", "patient"), ("/api/v1/reports?status=", "status"),
])  # fmt: skip
def test_a_typed_query_parameter_given_empty_is_a_400(api, url, name):
    response = api.get(url)
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == [name]


def test_the_schema_offers_an_idempotency_key_only_where_a_post_honours_it(api):
    paths = api.get("/api/schema/", {"format": "json"}).json()["paths"]

    def takes_key(path):
        return any(p["name"] == "Idempotency-Key" for p in paths[path]["post"].get("parameters", []))

    assert takes_key("/api/v1/patients") and takes_key("/api/v1/orders")
    assert not takes_key("/api/v1/webhooks") and not takes_key("/api/v1/crosswalk")
    assert paths["/api/v1/patients/{id}"]["get"]["parameters"][0]["schema"]["type"] == "integer"
