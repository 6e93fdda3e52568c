"""Every answer is what the schema says: the OpenAPI document the API serves is the contract, and
each GET endpoint's body, for records whose optional fields are all empty and all filled, is
validated against its response schema, held strictly: every field the schema names is there,
no other field is, and each has the type (and format) it says. The patient and study bodies are
written by hand for speed (integrations/api/rows.py): this is what holds them to the serializers
the schema is built from, beside ``fields_check`` at import.

And the request components, apart from the responses' (COMPONENT_SPLIT_REQUEST), carry nothing
read-only: a client generated from the schema sends only what may be written.
"""

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from django.conf import settings
from jsonschema import Draft4Validator, FormatChecker

from imaging.annotations.services import annotation_save
from imaging.models import Instance, Modality, Series, Study
from imaging.reports import services as report_services
from importing.models import Upload
from integrations.models import ApiClient, WebhookDelivery, WebhookSubscription
from integrations.webhooks import services as webhook_services
from patients.models import CodeMapping, Patient
from patients.services import ownership_set, visit_create, weight_record
from sending.models import Destination, Send
from sharing import services as sharing_services
from sharing.models import ConsultRequest
from tests.test_api_queries import api  # noqa: F401  (the fixture: an all-scopes client "Acme PMS")

pytestmark = pytest.mark.django_db

MOMENT = datetime(2026, 11, 23, 10, 20, 5, 123456, tzinfo=UTC)


@pytest.fixture
def schema(api):
    return api.get("/api/schema/", {"format": "json"}).json()


@pytest.fixture
def records(api, actor, make_owner, make_patient, make_order, stations, labrador, cat, dog):
    """Two records of every kind the API shows: one with every optional field empty, one with
    every optional field filled. Their ids, by the path that shows one."""
    full_owner = make_owner(
        "Hartley", title="Mrs", given_name="Jane", phone="020 7946 0000", mobile="07700 900123",
        email="jane@example.org", address_line1="1 High Street", address_line2="Flat 2", city="Leeds",
        postcode="LS1 1AA", country="GB", notes="Prefers mornings",
    )  # fmt: skip
    full_owner.external_ids.create(system="api:Acme PMS", value="O-1")
    bare_owner = make_owner("Okafor")

    biscuit = make_patient(
        "Biscuit", owner=full_owner, breed=labrador, microchip="985141000123456", sex="M", neutered="ALTERED",
        birth_date=date(2019, 4, 2), birth_date_estimated=True, colour="yellow", notes="Nervous at the vet",
    )  # fmt: skip
    ownership_set(actor=actor, patient=biscuit, owner=bare_owner, role="co-owner", primary=False)
    biscuit.external_ids.create(system="api:Acme PMS", value="P-1")
    weight_record(actor=actor, patient=biscuit, kg="31.25", measured_on=date(2026, 6, 1))
    tom = make_patient("Tom", species=cat)

    full_visit = visit_create(actor=actor, patient=biscuit, starts_at=MOMENT, reason="Lameness")
    visit_create(actor=actor, patient=tom)  # no time, no reason

    full_order = make_order(
        biscuit, visit=full_visit, reason="Cough", referring_vet="Dr Okafor", performing_vet="Dr Marsh",
        priority="STAT", weight_kg="31.250", placer_order_number="ORD-7",
    )  # fmt: skip
    bare_order = make_order(tom, station=None)

    full_study = Study.objects.create(
        study_instance_uid="1.2.826.0.1.1", patient=biscuit, order=full_order, link="order",
        accession_number=full_order.accession_number, study_date=date(2026, 11, 23), study_time=time(10, 15, 30),
        description="Thorax", referring_physician="Dr Okafor", received_at=MOMENT, updated=MOMENT,
    )  # fmt: skip
    series = Series.objects.create(study=full_study, series_instance_uid="1.2.826.0.1.1.1", series_number=1,
                                   modality="DX", thumbnail_key="thumbs/a.png")  # fmt: skip
    Instance.objects.create(series=series, sop_instance_uid="1.2.826.0.1.1.1.1", sop_class_uid="1.2",
                            transfer_syntax_uid="1.2", file_size=10, storage_key="k/1")  # fmt: skip
    bare_study = Study.objects.create(study_instance_uid="1.2.826.0.1.2")

    signed = report_services.report_finalize(
        actor=actor, study=full_study, findings="Clear lungs.", conclusion="Normal.", signer_name="Dr Marsh"
    )
    draft = report_services.report_save(actor=actor, study=bare_study, findings="", conclusion="")

    client = ApiClient.objects.get(name="Acme PMS")
    live, _ = webhook_services.subscription_create(
        actor=actor, client=client, url="https://pms.example/hook", events=["study.received"]
    )
    disabled, _ = webhook_services.subscription_create(
        actor=actor, client=client, url="https://pms.example/other", events=["report.finalized"],
        description="Reports",
    )  # fmt: skip
    WebhookSubscription.objects.filter(pk=disabled.pk).update(
        active=False,
        failure_streak=50,
        failing_since=MOMENT,
        disabled_at=MOMENT,
        disabled_reason="50 failures",
    )
    (pending,) = webhook_services.event_publish(event="study.received", data={"study": {"id": full_study.pk}})
    (sent,) = webhook_services.event_publish(event="study.received", data={"study": {"id": bare_study.pk}})
    WebhookDelivery.objects.filter(pk=sent.pk).update(
        status="delivered", attempts=2, response_codes=[500, 200], response_body="ok",
        error="not delivered: timed out", next_attempt_at=MOMENT, last_attempt_at=MOMENT, delivered_at=MOMENT,
    )  # fmt: skip

    Patient.objects.filter(pk=biscuit.pk).update(
        deceased=True, deceased_on=date(2026, 11, 1)
    )  # (after its order)
    CodeMapping.objects.create(system="Acme PMS", kind="species", external_code="K9", species=dog)
    CodeMapping.objects.create(
        system="Acme PMS", kind="breed", external_code="LAB", external_meaning="Labrador", breed=labrador
    )
    # Annotations (one study with a saved version, one without), a send, a consult and its link.
    annotation_save(
        actor=actor, study=full_study, version=0, key_images=[],
        annotations=[{"annotationUID": "a1", "metadata": {"toolName": "Length", "referencedImageId":
            "wadors:/dicomweb/studies/1.2.826.0.1.1/series/1.2.826.0.1.1.1/instances/1.2.826.0.1.1.1.1/frames/1"},
            "data": {"handles": {"points": [[0, 0, 0], [10, 0, 0]]}, "vetpacs": {"kind": "length",
            "label": "Length", "value": 10.0, "unit": "mm", "text": "10.0 mm", "reference": ""}}}],
    )  # fmt: skip
    node = Modality.objects.create(ae_title="READER", host="127.0.0.1", port=11112)
    destination = Destination.objects.create(name="Reader", node=node)
    sent = Send.objects.create(study=full_study, destination=destination, state="done", total=1, completed=1,
                               finished=MOMENT, requested_by_name="Dr Marsh")  # fmt: skip
    sent.results.create(sop_instance_uid="1.2.826.0.1.1.1.1", outcome="success", status=0)
    queued = Send.objects.create(study=bare_study, destination=destination)
    consult, _ = sharing_services.consult_create(
        actor=actor, study=full_study, destination="Dr Ruiz, cardiology", clinical_question="Heart size?",
        history="Cough", weight_kg=Decimal("31.25"),
    )  # fmt: skip
    # Its service's answers by HL7: final, then a correction that amends it.
    ConsultRequest.objects.filter(pk=consult.pk).update(sent_to=destination)
    for number, status in ((1, "final"), (2, "corrected")):
        sharing_services.consult_report_file(consult=consult, author_name="Dr Ruiz", text="Heart normal.",
                                             source="hl7", source_id=f"RUIZ:{number}", status=status)  # fmt: skip
    bare_consult, _ = sharing_services.consult_create(
        actor=actor, study=bare_study, destination="Teleradiology", clinical_question="Any fracture?"
    )
    sharing_services.link_create(actor=actor, study=bare_study, kind="owner", note="All well.")
    # An upload that stored a file and refused one, linked to an animal; one with nothing yet.
    done = Upload.objects.create(
        patient=biscuit, sender="Acme PMS", status="done", files_received=2, bytes_received=2048,
        stored=[{"name": "CT/1.dcm", "sop_instance_uid": "1.2.826.0.1.1.1.1"}],
        refused=[{"name": "notes.txt", "reason": "Not a DICOM file."}], finished=MOMENT,
    )  # fmt: skip
    waiting = Upload.objects.create()
    return {
        "/api/v1/uploads/{id}": [done.pk, waiting.pk],
        "/api/v1/studies/{id}/annotations": [full_study.pk, bare_study.pk],
        "/api/v1/studies/{id}/annotations/versions": [full_study.pk, bare_study.pk],
        "/api/v1/studies/{id}/measurements/history": [full_study.pk, bare_study.pk],
        "/api/v1/sends/{id}": [sent.pk, queued.pk],
        "/api/v1/studies/{id}/consults": [full_study.pk, bare_study.pk],
        "/api/v1/consults/{id}": [consult.pk, bare_consult.pk],
        "/api/v1/studies/{id}/share-links": [full_study.pk, bare_study.pk],
        "/api/v1/owners/{id}": [full_owner.pk, bare_owner.pk],
        "/api/v1/patients/{id}": [biscuit.pk, tom.pk],
        "/api/v1/patients/external/{external_id}": ["P-1"],
        "/api/v1/orders/{id}": [full_order.pk, bare_order.pk],
        "/api/v1/studies/{id}": [full_study.pk, bare_study.pk],
        "/api/v1/reports/{id}": [signed.pk, draft.pk],
        "/api/v1/webhooks/{id}": [live.pk, disabled.pk],
        "/api/v1/webhooks/deliveries/{id}": [pending.pk, sent.pk],
    }


def strict(schema, components):
    """An OpenAPI 3.0 schema as a JSON Schema that takes only what the API promises: ``$ref``s
    resolved, ``nullable`` as a null alternative, and every object's properties all present
    (the API writes null, never leaves a field out) and the only ones."""
    if "$ref" in schema:
        return strict(components[schema["$ref"].rsplit("/", 1)[1]], components)
    schema = dict(schema)
    nullable = schema.pop("nullable", False)
    if "properties" in schema:
        schema["properties"] = {name: strict(part, components) for name, part in schema["properties"].items()}
        schema["required"] = list(schema["properties"])
        schema.setdefault("additionalProperties", False)
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = strict(schema["additionalProperties"], components)
    if "items" in schema:
        schema["items"] = strict(schema["items"], components)
    for combined in ("allOf", "anyOf", "oneOf"):
        if combined in schema:
            schema[combined] = [strict(part, components) for part in schema[combined]]
    return {"anyOf": [schema, {"type": "null"}]} if nullable else schema


def problems(body, schema, components):
    validator = Draft4Validator(strict(schema, components), format_checker=FormatChecker())
    return [f"{'.'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}" for error in
            validator.iter_errors(body)]  # fmt: skip


def test_every_get_answers_what_its_response_schema_says(api, schema, records):
    components = schema["components"]["schemas"]
    asked, wrong = set(), []
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        content = operations["get"]["responses"]["200"]["content"]
        if "application/json" not in content:
            continue  # a file (a ZIP, a picture, a PDF: imaging/export/), checked by tests/test_export.py
        response = content["application/json"]["schema"]
        ids = records.get(path, [None])
        for record in ids:
            url = (
                path
                if record is None
                else path.replace(path[path.index("{") : path.index("}") + 1], str(record))
            )
            answer = api.get(url)
            assert answer.status_code == 200, (url, answer.content)
            body = answer.json()
            if "results" in body and "count" in body:  # a page (a send's "results" are its instances')
                assert len(body["results"]) >= 2, f"{url}: only {body['results']}"  # both kinds of record
            wrong += [f"GET {url}: {problem}" for problem in problems(body, response, components)]
        asked.add(path)
    assert not wrong, "\n".join(wrong)
    assert asked >= {"/api/v1/patients", "/api/v1/studies", *records}


@pytest.mark.parametrize("change, found", [
    ({"id": "1"}, "id: '1' is not of type 'integer'"),
    ({"weight_kg": 31.25}, "weight_kg: 31.25 is not valid under any of the given schemas"),  # (a string or null)
    ({"breed": None, "colour": None}, "colour: None is not of type 'string'"),
    ({"tattoo": "left ear"}, "(body): Additional properties are not allowed ('tattoo' was unexpected)"),
    ({"updated": "yesterday"}, "updated: 'yesterday' is not a 'date-time'"),
])  # fmt: skip
def test_a_patient_body_with_a_field_mistyped_missing_or_extra_fails_the_check(
    api, schema, records, change, found
):
    """The check itself can fail: what a writer in rows.py gone astray would answer."""
    body = api.get(f"/api/v1/patients/{records['/api/v1/patients/{id}'][0]}").json()
    components = schema["components"]["schemas"]
    assert problems(body, {"$ref": "#/components/schemas/Patient"}, components) == []
    assert found in problems({**body, **change}, {"$ref": "#/components/schemas/Patient"}, components)
    missing = {name: value for name, value in body.items() if name != "owners"}
    assert "(body): 'owners' is a required property" in problems(
        missing, {"$ref": "#/components/schemas/Patient"}, components
    )


def test_request_components_carry_no_read_only_field(schema):
    assert settings.SPECTACULAR_SETTINGS["COMPONENT_SPLIT_REQUEST"]
    components = schema["components"]["schemas"]
    sent = [name for name in components if name.endswith("Request")]
    assert {"PatientRequest", "PatchedPatientRequest", "OwnerRequest", "OrderRequest"} <= set(sent)

    def read_only(part, where, seen):
        if "$ref" in part:
            name = part["$ref"].rsplit("/", 1)[1]
            assert name.endswith("Request") or "properties" not in components[name], f"{where} -> {name}"
            if name in seen:
                return []
            return read_only(components[name], f"{where} -> {name}", seen | {name})
        found = [where] if part.get("readOnly") else []
        for name, inner in part.get("properties", {}).items():
            found += read_only(inner, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties"):
            if isinstance(part.get(key), dict):
                found += read_only(part[key], f"{where}[]", seen)
        for key in ("allOf", "anyOf", "oneOf"):
            for inner in part.get(key, []):
                found += read_only(inner, where, seen)
        return found

    assert [where for name in sent for where in read_only(components[name], name, {name})] == []
    # And each request body names a request component.
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content["schema"].get("$ref", "")
                assert ref.endswith("Request"), (method, path, ref)


def test_the_lists_query_parameters_are_their_filtersets_and_nothing_else(schema):
    from integrations.api import urls

    lists = 0
    for pattern in urls.urlpatterns:
        filterset = getattr(getattr(pattern.callback, "cls", None), "filterset_class", None)
        if filterset is None:
            continue
        path = "/" + str(pattern.pattern).replace("<id:pk>", "{id}")
        parameters = schema["paths"][path]["get"]["parameters"]
        named = {parameter["name"] for parameter in parameters if parameter["in"] == "query"}
        assert named == {*filterset.base_filters, "cursor", "page_size"}, path
        lists += 1
    assert lists == 9  # owners, patients, visits, orders, studies, reports, breeds, crosswalk, deliveries
