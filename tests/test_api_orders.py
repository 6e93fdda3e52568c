"""Orders and studies over REST."""

from datetime import UTC, datetime

import pytest
from pydicom.dataset import Dataset
from rest_framework.test import APIClient

from imaging.models import ImagingOrder, Study
from imaging.orders.worklist import worklist_items
from integrations.api.clients import api_client_create
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(actor):
    _, key = api_client_create(actor=actor, name="Acme PMS", scopes=["orders:write", "studies:read"])
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return http


@pytest.fixture
def biscuit(make_owner, make_patient, stations):
    return make_patient("Biscuit", owner=make_owner("Hartley"))


def test_an_order_created_over_rest_is_in_the_worklist(api, biscuit):
    response = api.post("/api/v1/orders", {"patient": biscuit.pk, "procedure": "DX-THX2",
                                           "scheduled_start": "2026-11-23T10:30:00Z", "reason": "Cough",
                                           "placer_order_number": "ACME-77"}, format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    body, order = response.json(), ImagingOrder.objects.get()
    assert body == {
        "id": order.pk, "patient": biscuit.pk, "visit": None, "procedure": "DX-THX2", "station": "DRROOM",
        "modality_type": "DX", "scheduled_start": "2026-11-23T10:30:00Z", "duration_minutes": 15, "reason": "Cough",
        "referring_vet": "", "performing_vet": "", "priority": "ROUTINE", "teleradiology": False, "weight_kg": None,
        "status": "scheduled",
        "status_changed": body["status_changed"], "accession_number": order.accession_number,
        "requested_procedure_id": order.requested_procedure_id, "scheduled_step_id": order.scheduled_step_id,
        "study_instance_uid": order.study_instance_uid, "placer_order_number": "ACME-77", "filler_order_number": "",
        "images_received_at": None, "study_ids": [], "updated": body["updated"],
    }  # fmt: skip
    query = Dataset()
    query.AccessionNumber = body["accession_number"]
    assert list(worklist_items(identifier=query)) == [order]


def test_an_order_marked_for_teleradiology_over_rest(api, biscuit):
    response = api.post("/api/v1/orders", {"patient": biscuit.pk, "procedure": "DX-THX2", "teleradiology": True,
                                           "scheduled_start": "2026-11-23T10:30:00Z"}, format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["teleradiology"] is True and ImagingOrder.objects.get().teleradiology is True
    again = api.get(f"/api/v1/orders/{response.json()['id']}")
    assert again.json()["teleradiology"] is True
    refused = api.post("/api/v1/orders", {"patient": biscuit.pk, "procedure": "DX-THX2", "teleradiology": "maybe",
                                          "scheduled_start": "2026-11-23T10:30:00Z"}, format="json")  # fmt: skip
    assert refused.status_code == 400 and "teleradiology" in refused.json()["error"]["fields"]


def test_bad_order_fields_are_named(api, biscuit, cat, make_patient):
    response = api.post("/api/v1/orders", {"patient": biscuit.pk, "procedure": "NOPE"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"procedure", "scheduled_start"}
    tiddles = make_patient("Tiddles", species=cat)
    response = api.post("/api/v1/orders", {"patient": tiddles.pk, "procedure": "DX-ELBW",
                                           "scheduled_start": "2026-11-23T10:30:00Z"}, format="json")  # fmt: skip
    assert (
        response.status_code == 400
        and "not offered for a cat" in response.json()["error"]["fields"]["procedure"][0]
    )


def test_reschedule_cancel_and_a_409_when_the_state_forbids(api, biscuit, make_order):
    order = make_order(biscuit)
    moved = api.post(
        f"/api/v1/orders/{order.pk}/reschedule", {"scheduled_start": "2026-11-24T09:00:00Z"}, format="json"
    )
    assert moved.status_code == 200 and moved.json()["scheduled_start"] == "2026-11-24T09:00:00Z"
    cancelled = api.post(f"/api/v1/orders/{order.pk}/cancel", {"reason": "owner called"}, format="json")
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(
        f"/api/v1/orders/{order.pk}/reschedule", {"scheduled_start": "2026-11-25T09:00:00Z"}, format="json"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    stale = api.post(f"/api/v1/orders/{order.pk}/cancel", {}, format="json", HTTP_IF_MATCH='"old"')
    assert stale.status_code == 412


def test_a_patch_marks_an_order_for_teleradiology_and_is_audited_as_the_client(api, biscuit, make_order):
    order = make_order(biscuit, reason="Cough")
    before = api.get(f"/api/v1/orders/{order.pk}").json()
    response = api.patch(f"/api/v1/orders/{order.pk}", {"teleradiology": True, "priority": "STAT",
                                                        "reason": "Cough, worse at night"}, format="json")  # fmt: skip
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body == {**before, "teleradiology": True, "priority": "STAT", "reason": "Cough, worse at night",
                    "updated": body["updated"]}  # fmt: skip
    assert body["updated"] > before["updated"] and response["ETag"]
    stored = ImagingOrder.objects.get(pk=order.pk)
    assert (stored.teleradiology, stored.priority, stored.reason) == (True, "STAT", "Cough, worse at night")
    entry = AuditEntry.objects.get(object_id=str(order.pk), action="update")
    assert (entry.channel, entry.actor) == ("api", "Acme PMS")
    assert entry.changes["teleradiology"] == ["False", "True"]  # (the audit keeps text)
    # The same again changes nothing: no second audit row, the same version.
    again = api.patch(f"/api/v1/orders/{order.pk}", {"teleradiology": True}, format="json")
    assert again.status_code == 200 and again.json()["updated"] == body["updated"]
    assert AuditEntry.objects.filter(object_id=str(order.pk), action="update").count() == 1


@pytest.mark.parametrize("change, field", [
    ({"teleradiology": "yes"}, "teleradiology"),
    ({"teleradiology": None}, "teleradiology"),
    ({"priority": "SOON"}, "priority"),
    ({"reason": 42}, "reason"),
    ({"weight_kg": -3}, "weight_kg"),
    ({"visit": 10**9}, "visit"),
    ({"teleradiolgy": True}, "teleradiolgy"),  # misspelt: not dropped in silence
    ({"status": "completed"}, "status"),  # shown, not written here
    ({"scheduled_start": "2026-11-24T09:00:00Z"}, "scheduled_start"),  # that is …/reschedule
])  # fmt: skip
def test_a_bad_patch_is_a_400_naming_the_field_and_changes_nothing(api, biscuit, make_order, change, field):
    order = make_order(biscuit)
    before = api.get(f"/api/v1/orders/{order.pk}").json()
    response = api.patch(f"/api/v1/orders/{order.pk}", {"priority": "HIGH", **change}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [field]
    assert api.get(f"/api/v1/orders/{order.pk}").json() == before
    assert not AuditEntry.objects.filter(object_id=str(order.pk), action="update").exists()


def test_a_patch_naming_another_animals_visit_is_a_400_naming_it(
    api, actor, biscuit, make_order, make_patient
):
    from patients.services import visit_create

    order = make_order(biscuit)
    rexs = visit_create(
        actor=actor, patient=make_patient("Rex"), starts_at=datetime(2026, 11, 23, 9, tzinfo=UTC)
    )
    response = api.patch(f"/api/v1/orders/{order.pk}", {"visit": rexs.pk}, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (
        400, {"visit": ["This visit is another animal's."]}
    )  # fmt: skip
    assert ImagingOrder.objects.get(pk=order.pk).visit is None


def test_a_patch_without_the_orders_write_scope_is_a_403(actor, biscuit, make_order):
    order = make_order(biscuit)
    _, key = api_client_create(actor=actor, name="Reader", scopes=["orders:read"])
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert reader.get(f"/api/v1/orders/{order.pk}").status_code == 200
    response = reader.patch(f"/api/v1/orders/{order.pk}", {"teleradiology": True}, format="json")
    assert (response.status_code, response.json()["error"]["message"]) == (
        403, "This API client has no 'orders:write' scope."
    )  # fmt: skip
    assert ImagingOrder.objects.get(pk=order.pk).teleradiology is False


def test_a_patch_of_a_completed_order_is_a_409_saying_why_and_a_stale_one_a_412(
    api, actor, biscuit, make_order
):
    from imaging.orders.services import order_status_set

    order = make_order(biscuit)
    stale = api.patch(f"/api/v1/orders/{order.pk}", {"reason": "x"}, format="json", HTTP_IF_MATCH='"old"')
    assert stale.status_code == 412
    order_status_set(actor=actor, order=order, status=ImagingOrder.Status.COMPLETED)
    response = api.patch(f"/api/v1/orders/{order.pk}", {"teleradiology": True}, format="json")
    assert (response.status_code, response.json()) == (409, {"error": {
        "code": "conflict",
        "message": f"Order {order.accession_number} is completed; its details can no longer be changed.",
    }})  # fmt: skip
    assert ImagingOrder.objects.get(pk=order.pk).teleradiology is False


def test_the_schema_documents_the_patch_and_closes_its_body(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/orders/{id}"]["patch"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    written = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(written["properties"]) == {"visit", "priority", "teleradiology", "reason", "referring_vet",
                                          "performing_vet", "weight_kg"}  # fmt: skip
    assert written["additionalProperties"] is False and not written.get("required")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Order")
    assert {"400", "403", "409", "412"} <= set(operation["responses"])


def test_orders_list_by_status_date_and_patient(api, biscuit, make_order, make_patient):
    a = make_order(biscuit, at=datetime(2026, 11, 23, 10, tzinfo=UTC))
    make_order(make_patient("Rex"), at=datetime(2026, 11, 24, 10, tzinfo=UTC))
    assert [o["id"] for o in api.get("/api/v1/orders", {"date": "2026-11-23"}).json()["results"]] == [a.pk]
    assert [
        o["id"]
        for o in api.get("/api/v1/orders", {"patient": biscuit.pk, "status": "scheduled,arrived"}).json()[
            "results"
        ]
    ] == [a.pk]
    bad = api.get("/api/v1/orders", {"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]


def test_studies_by_patient_with_counts_and_links(api, biscuit, make_order, django_assert_max_num_queries):
    from imaging.models import Instance, Series

    order = make_order(biscuit)
    for n in range(3):
        study = Study.objects.create(study_instance_uid=f"1.2.3.{n}", patient=biscuit, order=order if n == 0 else None,
                                     accession_number=order.accession_number if n == 0 else "", link="order")  # fmt: skip
        series = Series.objects.create(study=study, series_instance_uid=f"1.2.3.{n}.1", modality="DX")
        for i in range(2):
            Instance.objects.create(
                series=series,
                sop_instance_uid=f"1.2.3.{n}.1.{i}",
                sop_class_uid="1.2",
                transfer_syntax_uid="1.2",
                file_size=10,
                storage_key=f"k{n}{i}",
            )
    with django_assert_max_num_queries(8):
        found = api.get("/api/v1/studies", {"patient": biscuit.pk}).json()["results"]
    assert len(found) == 3 and all(s["instance_count"] == 2 and s["series_count"] == 1 for s in found)
    first = found[0]
    assert first["modalities"] == ["DX"] and first["viewer_url"].endswith(f"/studies/{first['id']}/")
    assert [
        s["id"]
        for s in api.get("/api/v1/studies", {"accession_number": order.accession_number}).json()["results"]
    ] == [first["id"]]
    assert api.get(f"/api/v1/orders/{order.pk}").json()["study_ids"] == [first["id"]]


def test_the_same_post_with_the_same_idempotency_key_creates_once(api, biscuit):
    body = {"patient": biscuit.pk, "procedure": "DX-THX2", "scheduled_start": "2026-11-23T10:30:00Z"}
    first = api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    again = api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert ImagingOrder.objects.count() == 1
    other = api.post("/api/v1/orders", {**body, "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert other.status_code == 409 and ImagingOrder.objects.count() == 1
    api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    assert ImagingOrder.objects.count() == 2
