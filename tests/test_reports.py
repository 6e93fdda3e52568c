"""Reports: a vet drafts, signs and amends the report on a study; the order becomes reported;
the PMS hears of it by HL7 ORU^R01 (a real MLLP receiver) and by the report.finalized webhook,
and reads it over REST."""

import types

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from imaging.models import ImagingOrder, Report, Study
from imaging.reports import services as reports
from integrations.api.clients import api_client_create
from integrations.hl7 import outbound
from integrations.webhooks import services as webhooks
from tests.conftest import free_port
from tests.test_hl7_outbound import Receiver, endpoint
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db

FINDINGS = "Diffuse bronchial pattern.\n\nCardiac silhouette within normal limits | VHS 9.8 ^ normal."
CONCLUSION = "Mild bronchitis; no sign of heart disease."


@pytest.fixture
def order(make_owner, make_patient, make_order, actor):
    from patients.services import patient_upsert

    biscuit = make_patient("Biscuit", owner=make_owner("Hartley"))
    patient_upsert(actor=actor, fields={}, patient=biscuit, external=("hl7:VETPMS", "PMS-1001"))
    return make_order(biscuit, placer_order_number="ORD-7")


@pytest.fixture
def study(order):
    """The order's images have arrived: its study, linked by accession number."""
    from datetime import date, time

    return Study.objects.create(
        study_instance_uid=order.study_instance_uid, patient=order.patient, order=order, link=Study.Link.ORDER,
        accession_number=order.accession_number, study_date=date(2026, 11, 23), study_time=time(10, 5, 30),
        description="Thorax",
    )  # fmt: skip


@pytest.fixture
def vet(staff):
    return Actor.for_user(staff["veterinarian"])


@pytest.fixture
def published():
    """The order events published (after their commit), as (event, details)."""
    from imaging.orders import events

    seen = []

    def record(order_id, event, **details):
        seen.append((event, details))

    events._subscribers.append(record)
    yield seen
    events._subscribers.remove(record)


# Services ----------------------------------------------------------------------------------


def test_a_draft_is_kept_then_signed_and_the_order_becomes_reported(
    study, order, vet, staff, published, django_capture_on_commit_callbacks
):
    draft = reports.report_save(actor=vet, study=study, findings="  Bronchial pattern. ", conclusion="")
    assert (draft.status, draft.findings, draft.version, draft.finalized_at) == (
        "draft",
        "Bronchial pattern.",
        0,
        None,
    )
    assert ImagingOrder.objects.get(pk=order.pk).status == "scheduled"  # a draft tells nobody

    with django_capture_on_commit_callbacks(execute=True):
        report = reports.report_finalize(actor=vet, study=study, findings=FINDINGS, conclusion=CONCLUSION)
    assert report.pk == draft.pk
    assert (report.status, report.version, report.signed_by, report.signed_by_name) == (
        "final",
        1,
        staff["veterinarian"],
        "Veterinarian",
    )
    assert report.finalized_at is not None and report.findings == FINDINGS
    order.refresh_from_db()
    assert order.status == "reported"
    assert list(order.status_changes.order_by("id").values_list("new", flat=True)) == [
        "scheduled",
        "completed",
        "reported",
    ]
    events = published
    assert ("report_final", {"report": {"id": report.pk, "status": "final", "version": 1}}) in events
    assert ("order_completed", {}) in events
    actions = list(
        AuditEntry.objects.filter(object_type__model="report").values_list("action", flat=True).order_by("id")
    )
    assert actions == ["create", "finalize"]


def test_a_signed_report_is_only_amended_with_a_reason_and_new_text(
    study, order, vet, published, django_capture_on_commit_callbacks
):
    reports.report_finalize(actor=vet, study=study, findings=FINDINGS, conclusion=CONCLUSION)
    with pytest.raises(ValidationError) as signed:
        reports.report_save(actor=vet, study=study, findings="changed", conclusion="")
    assert "amend it instead" in signed.value.message_dict["findings"][0]
    with pytest.raises(ValidationError) as again:
        reports.report_finalize(actor=vet, study=study, findings="changed", conclusion="")
    assert (
        signed.value.error_dict["findings"][0].code
        == again.value.error_dict["findings"][0].code
        == "invalid_state"
    )
    with pytest.raises(ValidationError) as no_reason:
        reports.report_amend(actor=vet, study=study, findings="changed", conclusion=CONCLUSION, reason=" ")
    assert list(no_reason.value.message_dict) == ["reason"]
    with pytest.raises(ValidationError) as same:
        reports.report_amend(actor=vet, study=study, findings=FINDINGS, conclusion=CONCLUSION, reason="typo")
    assert "same as the signed report" in same.value.message_dict["findings"][0]

    with django_capture_on_commit_callbacks(execute=True):
        amended = reports.report_amend(
            actor=vet, study=study, findings=FINDINGS, conclusion="Bronchitis; recheck in 4 weeks.", reason="advice added"
        )  # fmt: skip
    assert (amended.status, amended.version, amended.conclusion) == (
        "amended",
        2,
        "Bronchitis; recheck in 4 weeks.",
    )
    assert ("report_final", {"report": {"id": amended.pk, "status": "amended", "version": 2}}) in published
    entry = AuditEntry.objects.filter(action="amend").get()
    assert entry.changes["reason"] == [None, "advice added"] and entry.changes["version"] == [1, 2]
    assert ImagingOrder.objects.get(pk=order.pk).status == "reported"


def test_an_empty_or_huge_report_is_refused_and_nothing_is_written(study, order, vet):
    with pytest.raises(ValidationError) as empty:
        reports.report_finalize(actor=vet, study=study, findings="  ", conclusion="\n")
    assert "before signing" in empty.value.message_dict["findings"][0]
    with pytest.raises(ValidationError) as huge:
        reports.report_save(actor=vet, study=study, findings="x" * 20_001, conclusion="")
    assert "At most 20,000 characters" in huge.value.message_dict["findings"][0]
    assert not Report.objects.exists()
    assert ImagingOrder.objects.get(pk=order.pk).status == "scheduled"


def test_a_study_without_an_order_is_reported_and_a_cancelled_order_keeps_its_status(
    study, order, vet, actor, published, django_capture_on_commit_callbacks
):
    from imaging.orders.services import order_cancel

    loose = Study.objects.create(study_instance_uid="1.2.3.99", patient=order.patient, link=Study.Link.MANUAL)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            reports.report_finalize(actor=vet, study=loose, findings="Normal.", conclusion="").status
            == "final"
        )
    assert published == []  # no order: nobody to tell
    order_cancel(actor=actor, order=order, reason="owner left")
    with django_capture_on_commit_callbacks(execute=True):
        reports.report_finalize(actor=vet, study=study, findings="Normal.", conclusion="")
    assert ImagingOrder.objects.get(pk=order.pk).status == "cancelled"
    assert [event for event, _ in published] == ["report_final"]


# The study page ----------------------------------------------------------------------------


def test_a_vet_writes_and_signs_the_report_on_the_study_page(client, staff, study, order):
    client.force_login(staff["veterinarian"])
    url = reverse("study_report", args=[study.pk])
    page = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert 'name="findings"' in page and "Sign report" in page and "Not reported yet" not in page

    response = client.post(
        url, {"findings": "Bronchial pattern.", "conclusion": "", "action": "save", "loaded": "none"}
    )
    assert response.status_code == 302 and response.url.endswith("#report")
    report = Report.objects.get()
    assert report.status == "draft"
    response = client.post(url, {"findings": FINDINGS, "conclusion": CONCLUSION, "action": "finalize",
                                 "loaded": report.updated.isoformat()})  # fmt: skip
    assert response.status_code == 302
    page = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "Report signed" in page and "signed by Veterinarian" in page
    assert "Cardiac silhouette within normal limits | VHS 9.8 ^ normal." in page
    assert "Amend the signed report" in page and "Sign report</button>" not in page
    assert ImagingOrder.objects.get(pk=order.pk).status == "reported"


def test_an_error_or_a_stale_page_gives_the_vets_text_back(client, staff, study, vet):
    client.force_login(staff["veterinarian"])
    url = reverse("study_report", args=[study.pk])
    response = client.post(url, {"findings": " ", "conclusion": "", "action": "finalize", "loaded": "none"})
    assert response.status_code == 400
    assert "Write the findings or the conclusion before signing" in response.content.decode()

    reports.report_save(actor=vet, study=study, findings="A colleague's draft.", conclusion="")  # meanwhile
    mine = "My long careful findings, typed for ten minutes."
    response = client.post(url, {"findings": mine, "conclusion": "", "action": "finalize", "loaded": "none"})
    body = response.content.decode()
    assert (
        response.status_code == 409 and "Someone else changed or signed this report" in body and mine in body
    )
    assert Report.objects.get().findings == "A colleague's draft."

    report = reports.report_finalize(actor=vet, study=study, findings="Signed text.", conclusion="")
    response = client.post(url, {"findings": "New text.", "conclusion": "", "action": "amend", "reason": "",
                                 "loaded": report.updated.isoformat()})  # fmt: skip
    body = response.content.decode()
    assert (
        response.status_code == 400 and "Say why the signed report is changed" in body and "New text." in body
    )
    assert "<details open>" in body  # the amend form stays open with the error


def test_front_desk_reads_the_report_but_cannot_write_it(client, staff, study, vet):
    client.force_login(staff["front desk"])
    assert "Not reported yet" in client.get(reverse("study_detail", args=[study.pk])).content.decode()
    reports.report_save(actor=vet, study=study, findings="Draft.", conclusion="")
    page = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert (
        "A vet is writing the report (draft)." in page
        and "Draft." not in page
        and 'name="findings"' not in page
    )
    response = client.post(reverse("study_report", args=[study.pk]),
                           {"findings": "x", "conclusion": "", "action": "save", "loaded": "none"})  # fmt: skip
    assert response.status_code == 403
    reports.report_finalize(actor=vet, study=study, findings="Final words.", conclusion="")
    assert "Final words." in client.get(reverse("study_detail", args=[study.pk])).content.decode()


# HL7 ORU^R01 -------------------------------------------------------------------------------


def _fields(text):
    return [line.split("|") for line in text.strip("\r").split("\r")]


@pytest.mark.parametrize("version, msh9", [("2.3.1", "ORU^R01"), ("2.5.1", "ORU^R01^ORU_R01")])
def test_a_signed_report_goes_to_the_pms_as_oru_r01(study, order, vet, version, msh9):
    port = free_port()
    receiver = Receiver(port)
    endpoint(port, version=version)
    report = reports.report_finalize(actor=vet, study=study, findings=FINDINGS, conclusion=CONCLUSION)
    [message] = outbound.order_event(order.pk, "report_final")
    assert outbound.message_send(message_id=message.pk) == "sent"
    receiver.close()
    assert message.message_type == "ORU^R01"
    lines = _fields(receiver.received[0])
    assert [line[0] for line in lines] == ["MSH", "PID", "ORC", "OBR"] + ["OBX"] * 5
    msh, pid, orc, obr, *obx = lines
    assert (msh[8], msh[11], pid[5]) == (msh9, version, "Hartley^Biscuit")
    assert pid[3].startswith("PMS-1001^^^VETPMS~")
    assert (orc[1], orc[2], orc[3], orc[5]) == ("RE", "ORD-7", order.accession_number, "CM")
    assert (obr[2], obr[3], obr[7], obr[25], obr[32]) == (
        "ORD-7",
        order.accession_number,
        "20261123100530",
        "F",
        "Veterinarian",
    )
    assert obr[22].startswith(f"{report.finalized_at.astimezone():%Y%m%d}")
    assert [(o[1], o[2], o[3].split("^")[0], o[4], o[5], o[11]) for o in obx] == [
        ("1", "TX", "59776-5", "1", "Diffuse bronchial pattern.", "F"),
        ("2", "TX", "59776-5", "1", "", "F"),
        (
            "3",
            "TX",
            "59776-5",
            "1",
            "Cardiac silhouette within normal limits \\F\\ VHS 9.8 \\S\\ normal.",
            "F",
        ),
        ("4", "TX", "19005-8", "2", CONCLUSION, "F"),
        ("5", "RP", "STUDY", "", f"http://127.0.0.1:8000/studies/{study.pk}/^^URI", "F"),
    ]


def test_an_amended_report_is_sent_as_a_correction(study, order, vet):
    endpoint(free_port())
    reports.report_finalize(actor=vet, study=study, findings="Normal.", conclusion="")
    reports.report_amend(actor=vet, study=study, findings="Normal thorax.", conclusion="", reason="wording")
    [message] = outbound.order_event(order.pk, "report_final")
    lines = {line[0]: line for line in _fields(message.raw)}
    assert lines["OBR"][25] == "C" and lines["OBX"][11] == "C"
    assert _fields(message.raw)[4][5] == "Normal thorax."


# Webhook and REST --------------------------------------------------------------------------


def test_report_finalized_webhook_says_which_report_and_where_to_read_it(
    study, order, vet, actor, monkeypatch
):
    client, _ = api_client_create(actor=actor, name="Acme PMS", scopes=["webhooks:write", "reports:read"])
    webhooks.subscription_create(actor=actor, client=client, url="https://pms.example/h", events=["report.finalized"],
                                 secret="whsec_test-secret-0123456789")  # fmt: skip
    monkeypatch.setattr(webhooks, "current_app", types.SimpleNamespace(send_task=lambda *a, **k: None))
    report = reports.report_finalize(actor=vet, study=study, findings=FINDINGS, conclusion=CONCLUSION)
    details = {"report": {"id": report.pk, "status": "final", "version": 1}}
    [delivery] = webhooks.object_event_publish(
        event="report.finalized", kind="order", pk=order.pk, details=details, created=None
    )
    data = delivery.payload["data"]
    assert data["order"]["status"] == "reported" and data["study"]["id"] == study.pk
    assert data["report"] == {
        "id": report.pk, "status": "final", "version": 1, "study": study.pk, "signed_by": "Veterinarian",
        "finalized_at": report.finalized_at.astimezone(__import__("datetime").timezone.utc).isoformat().replace("+00:00", "Z"),
        "url": f"http://127.0.0.1:8000/api/v1/reports/{report.pk}",
        "viewer_url": f"http://127.0.0.1:8000/studies/{study.pk}/#report",
    }  # fmt: skip


@pytest.fixture
def api(actor):
    def make(scopes=("reports:read",)):
        _, key = api_client_create(actor=actor, name=f"PMS {' '.join(scopes)}", scopes=list(scopes))
        http = APIClient()
        http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return http

    return make


def test_the_pms_reads_reports_over_rest(api, study, order, vet):
    from rest_framework.fields import DateTimeField

    when = DateTimeField().to_representation
    report = reports.report_finalize(actor=vet, study=study, findings=FINDINGS, conclusion=CONCLUSION)
    other = Study.objects.create(study_instance_uid="1.2.3.98", patient=order.patient, link=Study.Link.MANUAL)
    draft = reports.report_save(actor=vet, study=other, findings="Draft.", conclusion="")
    http = api()

    response = http.get(f"/api/v1/reports/{report.pk}")
    assert response.status_code == 200 and response["ETag"]
    assert response.json() == {
        "id": report.pk, "study": study.pk, "order": order.pk, "patient": order.patient_id,
        "accession_number": order.accession_number, "status": "final", "version": 1, "findings": FINDINGS,
        "conclusion": CONCLUSION, "signed_by_name": "Veterinarian", "finalized_at": when(report.finalized_at),
        "viewer_url": f"http://127.0.0.1:8000/studies/{study.pk}/#report",
        "created": when(report.created), "updated": when(report.updated),
    }  # fmt: skip
    ids = lambda query: [r["id"] for r in http.get(f"/api/v1/reports{query}").json()["results"]]  # noqa: E731
    assert ids("") == [report.pk, draft.pk]
    assert ids("?status=final") == [report.pk] and ids("?status=draft") == [draft.pk]
    assert ids(f"?order={order.pk}") == [report.pk] and ids(f"?study={other.pk}") == [draft.pk]
    assert ids(f"?patient={order.patient_id}") == [report.pk, draft.pk]
    reports.report_amend(actor=vet, study=study, findings="Amended.", conclusion="", reason="wording")
    assert ids("?status=final") == [report.pk]  # an amended report is final too
    assert (
        http.get(f"/api/v1/reports?updated_since={when(draft.updated)}").json()["results"][0]["status"]
        == "amended"
    )


def test_bad_report_queries_get_400_naming_the_field_and_scopes_are_checked(api):
    http = api()
    for query, field in (
        ("status=signed", "status"),
        ("order=abc", "order"),
        ("updated_since=yesterday", "updated_since"),
    ):
        response = http.get(f"/api/v1/reports?{query}")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], query
    assert http.get("/api/v1/reports/999").status_code == 404
    assert api(scopes=("studies:read",)).get("/api/v1/reports").status_code == 403


def test_a_teleradiology_service_writes_signs_and_amends_a_report_over_rest(api, study, order):
    http = api(scopes=("reports:read", "reports:write"))
    response = http.post("/api/v1/reports", {"study": study.pk, "findings": "First look."}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "draft"
    report_id = response.json()["id"]
    response = http.post("/api/v1/reports", {"study": study.pk, "findings": FINDINGS, "conclusion": CONCLUSION,
                                             "status": "final", "signed_by_name": "Dr. A. Radiologist, DACVR"},
                         format="json", HTTP_IDEMPOTENCY_KEY="sign-1")  # fmt: skip
    body = response.json()
    assert response.status_code == 200 and body["id"] == report_id
    assert (body["status"], body["version"], body["signed_by_name"]) == (
        "final",
        1,
        "Dr. A. Radiologist, DACVR",
    )
    assert ImagingOrder.objects.get(pk=order.pk).status == "reported"
    replayed = http.post("/api/v1/reports", {"study": study.pk, "findings": FINDINGS, "conclusion": CONCLUSION,
                                             "status": "final", "signed_by_name": "Dr. A. Radiologist, DACVR"},
                         format="json", HTTP_IDEMPOTENCY_KEY="sign-1")  # fmt: skip
    assert replayed.status_code == 200 and replayed["Idempotent-Replayed"] == "true"
    again = http.post(
        "/api/v1/reports", {"study": study.pk, "findings": "x", "status": "final"}, format="json"
    )
    assert again.status_code == 409 and "amend it instead" in again.json()["error"]["message"]

    etag = http.get(f"/api/v1/reports/{report_id}")["ETag"]
    amend = {"findings": FINDINGS, "conclusion": "Bronchitis.", "reason": "shorter conclusion"}
    response = http.post(f"/api/v1/reports/{report_id}/amend", amend, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200 and (response.json()["status"], response.json()["version"]) == (
        "amended",
        2,
    )
    assert (
        response.json()["signed_by_name"] == "PMS reports:read reports:write"
    )  # no name given: the client's
    stale = http.post(
        f"/api/v1/reports/{report_id}/amend",
        {**amend, "conclusion": "Other."},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert stale.status_code == 412
    assert Report.objects.get().conclusion == "Bronchitis."
    entry = AuditEntry.objects.filter(action="amend").get()
    assert (entry.channel, entry.actor) == ("api", "PMS reports:read reports:write")


@pytest.mark.parametrize("body, field", [
    ({"findings": "No study named."}, "study"),
    ({"study": 999999, "findings": "x"}, "study"),
    ({"study": "STUDY", "findings": "x"}, "study"),
    ({"STUDY": 0, "findings": "x" * 20_001}, "findings"),
    ({"STUDY": 0, "findings": " ", "status": "final"}, "findings"),
    ({"STUDY": 0, "findings": "x", "status": "amended"}, "status"),
    ({"STUDY": 0, "findings": ["a list"]}, "findings"),
])  # fmt: skip
def test_bad_report_writes_get_400_naming_the_field_and_change_nothing(api, study, body, field):
    body = {("study" if k == "STUDY" else k): (study.pk if k == "STUDY" else v) for k, v in body.items()}
    response = api(scopes=("reports:write",)).post("/api/v1/reports", body, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == [field], (
        response.json()
    )
    assert not Report.objects.exists()


def test_writing_reports_needs_the_write_scope_and_amending_a_draft_is_a_conflict(api, study, vet):
    assert (
        api().post("/api/v1/reports", {"study": study.pk, "findings": "x"}, format="json").status_code == 403
    )
    draft = reports.report_save(actor=vet, study=study, findings="Draft.", conclusion="")
    response = api(scopes=("reports:write",)).post(
        f"/api/v1/reports/{draft.pk}/amend", {"findings": "x", "reason": "y"}, format="json"
    )
    assert response.status_code == 409 and "Only a signed report" in response.json()["error"]["message"]


def test_an_admin_finds_reports_in_the_admin_read_only(client, staff, study, vet):
    report = reports.report_finalize(actor=vet, study=study, findings="Normal.", conclusion="")
    client.force_login(staff["admin"])
    listing = client.get(reverse("admin:imaging_report_changelist") + f"?q={study.accession_number}")
    assert listing.status_code == 200 and "Veterinarian" in listing.content.decode()
    assert (
        client.post(reverse("admin:imaging_report_change", args=[report.pk]), {"findings": "x"}).status_code
        == 403
    )
