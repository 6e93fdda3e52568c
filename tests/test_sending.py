"""Sending studies out (sending/): C-STORE to dcmtk's storescp byte for byte, decompressed for a
peer that takes uncompressed only, STOW-RS into Orthanc (twice: nothing doubled), retries then
a visible failure, routing rules that send a study once, and the REST endpoints."""

import subprocess
import types
from datetime import timedelta

import pydicom
import pytest
from django.urls import reverse
from django.utils.timezone import now
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from imaging.models import Instance, Modality, Study
from integrations.api.clients import api_client_create
from integrations.models import WebhookDelivery, WebhookSubscription
from sending.models import Destination, RoutingLog, RoutingRule, Send, SendResult
from sending.services import RETRY, routing_check, send_run, study_send
from tests.conftest import free_port, tool_required, wait_for
from tests.test_dicom_tls_out import certificates, storescp_tls  # noqa: F401  (fixtures)
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)
from vetclinic.audit.services import Actor


def data_set(path):
    """The data set's bytes of a Part 10 file: after the preamble, 'DICM' and the File Meta group."""
    raw = open(path, "rb").read()
    return raw[144 + int.from_bytes(raw[140:144], "little") :]


def received(folder):
    """What a storescp wrote, by SOP Instance UID."""
    found = {}
    for path in folder.iterdir():
        if path.is_file():
            found[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return found


def stored_path(storage_root, instance):
    return storage_root / instance.storage_key


@pytest.fixture
def storescp_start(tmp_path):
    """dcmtk's storescp on a free port, as many as asked; ``options`` choose what it accepts."""
    storescp = tool_required("/usr/bin/storescp")
    started = []

    def start(*options):
        folder = tmp_path / f"storescp-{len(started)}"
        folder.mkdir()
        port = free_port()
        process = subprocess.Popen([storescp, *options, "-aet", "PEER", "-od", str(folder), str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        started.append(process)

        def listening():
            import socket

            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=20, message="storescp")
        return types.SimpleNamespace(port=port, folder=folder)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def node_destination(port, name="Peer", ae="PEER"):
    node = Modality.objects.create(ae_title=ae, host="127.0.0.1", port=port, modality_type="OT",
                                   may_store=False, may_query=False)  # fmt: skip
    return Destination.objects.create(name=name, kind=Destination.Kind.DICOM, node=node)


def two_series_study(ingest):  # noqa: F811
    study_uid, first, second = generate_uid(), generate_uid(), generate_uid()
    ingest(("CT_small.dcm", uids(study_uid, first, InstanceNumber=1)),
           ("CT_small.dcm", uids(study_uid, first, InstanceNumber=2)),
           ("MR_small.dcm", uids(study_uid, second, InstanceNumber=1)))  # fmt: skip
    return Study.objects.get(study_instance_uid=study_uid)


ACTOR = Actor.system("test")


@pytest.mark.django_db
def test_send_arrives_byte_for_byte_at_storescp(ingest, storescp_start, storage_root):  # noqa: F811
    study = two_series_study(ingest)
    peer = storescp_start("+B", "+xa")
    send = study_send(study=study, destination=node_destination(peer.port), actor=ACTOR)
    assert send_run(send.pk) == Send.State.DONE
    send.refresh_from_db()
    assert (send.total, send.completed, send.failed, send.alert) == (3, 3, 0, False)
    got = received(peer.folder)
    instances = {i.sop_instance_uid: i for i in Instance.objects.filter(series__study=study)}
    assert set(got) == set(instances)
    for uid, instance in instances.items():
        assert data_set(got[uid]) == data_set(stored_path(storage_root, instance))
    results = SendResult.objects.filter(send=send)
    assert sorted((r.outcome, r.status) for r in results) == [("success", 0)] * 3


@pytest.mark.django_db
def test_a_series_only(ingest, storescp_start):  # noqa: F811
    study = two_series_study(ingest)
    peer = storescp_start("+B", "+xa")
    series = study.series.get(modality="MR")
    send = study_send(study=study, destination=node_destination(peer.port), series=series, actor=ACTOR)
    assert send_run(send.pk) == Send.State.DONE
    got = received(peer.folder)
    assert list(got) == list(series.instances.values_list("sop_instance_uid", flat=True))


@pytest.mark.django_db
def test_compressed_study_arrives_decompressed_at_an_uncompressed_only_peer(ingest, storescp_start):  # noqa: F811
    study_uid = generate_uid()
    (instance,) = ingest(("MR_small_RLE.dcm", uids(study_uid)))
    assert instance.transfer_syntax_uid == RLELossless
    peer = storescp_start("+xe")  # accepts Explicit VR Little Endian (and Implicit) only, never RLE
    send = study_send(study=instance.series.study, destination=node_destination(peer.port), actor=ACTOR)
    assert send_run(send.pk) == Send.State.DONE
    (path,) = received(peer.folder).values()
    arrived = pydicom.dcmread(path)
    assert arrived.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    original = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small_RLE.dcm"))
    assert (arrived.pixel_array == original.pixel_array).all()  # lossless: every pixel as it was


@pytest.mark.django_db
def test_unreachable_destination_retries_then_fails_with_an_alert(ingest, settings, client, staff):  # noqa: F811
    settings.SEND_ATTEMPTS = 3
    study = two_series_study(ingest)
    WebhookSubscription.objects.create(
        client=api_client_create(actor=ACTOR, name="PMS", scopes=["sends:read"], rate_limit=100)[0],
        url="https://pms.example/hook", secret="s", events=["study.sent"],
    )  # fmt: skip
    send = study_send(study=study, destination=node_destination(free_port()), actor=ACTOR)  # nobody listens
    assert send_run(send.pk) == RETRY
    send.refresh_from_db()
    assert (send.state, send.attempts, send.alert) == (Send.State.RETRYING, 1, False)
    assert "PEER at 127.0.0.1" in send.error
    assert send_run(send.pk) == RETRY
    assert send_run(send.pk) == Send.State.FAILED
    send.refresh_from_db()
    assert (send.state, send.attempts, send.alert, send.completed) == (Send.State.FAILED, 3, True, 0)
    (delivery,) = WebhookDelivery.objects.filter(event="study.sent")
    assert delivery.payload["data"]["state"] == "failed" and delivery.payload["data"]["send"] == send.pk
    client.force_login(staff["veterinarian"])
    card = client.get(reverse("study_sends", args=[study.pk])).content.decode()
    assert "1 send failed" in card and "Sending to Peer failed" in card


@pytest.mark.django_db
def test_stow_rs_into_orthanc_twice_doubles_nothing(ingest, orthanc_start):  # noqa: F811
    orthanc = orthanc_start()
    study = two_series_study(ingest)
    destination = Destination.objects.create(name="Orthanc web", kind=Destination.Kind.STOW,
                                             stow_url=orthanc.dicomweb_url)  # fmt: skip
    for _ in range(2):  # the same SOP Instance UIDs: a well-behaved receiver keeps one of each
        send = study_send(study=study, destination=destination, actor=ACTOR)
        assert send_run(send.pk) == Send.State.DONE
        assert orthanc.count() == 3
    assert sorted(orthanc.get("/instances/" + i + "/simplified-tags")["SOPInstanceUID"]
                  for i in orthanc.get("/instances")) == sorted(
        study.series.values_list("instances__sop_instance_uid", flat=True))  # fmt: skip


@pytest.mark.django_db
def test_c_store_into_orthanc_twice_doubles_nothing(ingest, orthanc_start):  # noqa: F811
    orthanc = orthanc_start()
    study = two_series_study(ingest)
    node = Modality.objects.create(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port,
                                   modality_type="OT")  # fmt: skip
    destination = Destination.objects.create(name="Orthanc", node=node)
    for _ in range(2):
        assert send_run(study_send(study=study, destination=destination, actor=ACTOR).pk) == Send.State.DONE
        assert orthanc.count() == 3


@pytest.mark.django_db
def test_routing_rule_forwards_a_new_study_exactly_once(ingest, storescp_start):  # noqa: F811
    peer = storescp_start("+B", "+xa")
    rule = RoutingRule.objects.create(name="CT to the radiologist", modality="CT", stable_seconds=60,
                                      destination=node_destination(peer.port))  # fmt: skip
    study = two_series_study(ingest)
    received_at = max(study.series.values_list("instances__received_at", flat=True))
    assert routing_check(at=received_at + timedelta(seconds=30)) == []  # not stable yet
    (send,) = routing_check(at=received_at + timedelta(seconds=61))
    assert routing_check(at=received_at + timedelta(seconds=61)) == []  # run twice: once
    assert RoutingLog.objects.get(rule=rule).send == send
    assert send_run(send.pk) == Send.State.DONE
    assert len(received(peer.folder)) == 3
    assert Send.objects.count() == 1


@pytest.mark.django_db
def test_routing_rule_that_does_not_match_sends_nothing(ingest, storescp_start):  # noqa: F811
    RoutingRule.objects.create(name="US only", modality="US", stable_seconds=0,
                               destination=node_destination(free_port()))  # fmt: skip
    two_series_study(ingest)
    assert routing_check(at=now() + timedelta(days=1)) == []


@pytest.mark.django_db
def test_routing_rule_for_teleradiology_sends_only_marked_orders_once(ingest, storescp_start, make_patient,  # noqa: F811
                                                                    make_order):  # fmt: skip
    """A rule "only orders marked for teleradiology": the study of the marked order goes, once;
    the study of an order that is not marked, and a study without an order, stay."""
    peer = storescp_start("+B", "+xa")
    rule = RoutingRule.objects.create(name="Teleradiology", teleradiology_only=True, stable_seconds=60,
                                      destination=node_destination(peer.port))  # fmt: skip
    marked = make_order(make_patient("Rex"), "CT-HEAD", teleradiology=True)
    plain = make_order(make_patient("Tess"), "CT-HEAD")
    assert (marked.teleradiology, plain.teleradiology) == (True, False)
    studies = []
    for order in (marked, plain, None):
        study_uid = order.study_instance_uid if order else generate_uid()
        ingest(("CT_small.dcm", uids(study_uid, AccessionNumber=order.accession_number if order else "")))
        studies.append(Study.objects.get(study_instance_uid=study_uid))
    assert [study.order_id for study in studies] == [marked.pk, plain.pk, None]
    later = now() + timedelta(days=1)
    (send,) = routing_check(at=later)
    assert routing_check(at=later) == []  # run again: nothing more
    assert send.study == studies[0]
    assert list(RoutingLog.objects.filter(rule=rule).values_list("study", flat=True)) == [studies[0].pk]
    assert send_run(send.pk) == Send.State.DONE
    sent = studies[0].series.values_list("instances__sop_instance_uid", flat=True)
    assert set(received(peer.folder)) == set(sent)


@pytest.fixture
def api_key():
    return api_client_create(actor=ACTOR, name="Tele", scopes=["sends:write"], rate_limit=100_000)[1]


@pytest.mark.django_db
def test_rest_send_and_progress(ingest, storescp_start, client, api_key):  # noqa: F811
    study = two_series_study(ingest)
    peer = storescp_start("+B", "+xa")
    destination = node_destination(peer.port)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    answer = client.post(f"/api/v1/studies/{study.pk}/sends", {"destination": destination.pk},
                         content_type="application/json", **auth)  # fmt: skip
    assert answer.status_code == 202, answer.content
    send_id = answer.json()["id"]
    assert answer.json()["state"] == "queued" and answer.json()["total"] == 3
    send_run(send_id)
    detail = client.get(f"/api/v1/sends/{send_id}", **auth).json()
    assert detail["state"] == "done" and detail["completed"] == 3
    assert sorted(r["outcome"] for r in detail["results"]) == ["success"] * 3


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({}, "destination"), ({"destination": "x"}, "destination"), ({"destination": 999999}, "destination"),
    ({"destination": None, "series": 1}, "destination"), ("DEST", "series"), ("DEST+series", "series"),
    ("DEST+instances", "instances"),
])  # fmt: skip
def test_rest_bad_input_names_the_field(ingest, client, api_key, body, field):  # noqa: F811
    study = two_series_study(ingest)
    destination = node_destination(free_port())
    if body == "DEST":
        body = {"destination": destination.pk, "series": "one"}
    elif body == "DEST+series":
        body = {"destination": destination.pk, "series": 999999}
    elif body == "DEST+instances":
        body = {"destination": destination.pk, "instances": ["1.2.3.4"]}
    answer = client.post(f"/api/v1/studies/{study.pk}/sends", body, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {api_key}")  # fmt: skip
    assert answer.status_code == 400, answer.content
    assert field in answer.content.decode()
    assert not Send.objects.exists()


@pytest.mark.django_db
def test_permissions(ingest, client, staff):  # noqa: F811
    study = two_series_study(ingest)
    destination = node_destination(free_port())
    reader = api_client_create(actor=ACTOR, name="Reader", scopes=["studies:write"], rate_limit=100)[1]
    answer = client.post(f"/api/v1/studies/{study.pk}/sends", {"destination": destination.pk},
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {reader}")  # fmt: skip
    assert answer.status_code == 403 and "sends:write" in answer.content.decode()
    client.force_login(staff["front desk"])  # front desk: no sending
    assert (
        client.post(reverse("study_send", args=[study.pk]), {"destination": destination.pk}).status_code
        == 403
    )
    assert client.post(f"/api/v1/studies/{study.pk}/sends", {"destination": destination.pk},
                       content_type="application/json").status_code == 403  # fmt: skip
    assert not Send.objects.exists()
    client.force_login(staff["veterinarian"])
    answer = client.post(reverse("study_send", args=[study.pk]), {"destination": destination.pk})
    assert answer.status_code == 200 and Send.objects.get().requested_by.username == "veterinarian"
    assert client.get(reverse("admin:sending_destination_changelist")).status_code == 302  # not staff: login


@pytest.mark.django_db
def test_admin_never_shows_the_auth_header(client, staff):
    destination = Destination.objects.create(name="Tele", kind=Destination.Kind.STOW,
                                             stow_url="https://tele.example/dicom-web",
                                             auth_header="Bearer s3cr3t-token")  # fmt: skip
    client.force_login(staff["admin"])
    page = client.get(reverse("admin:sending_destination_change", args=[destination.pk]))
    assert page.status_code == 200 and "s3cr3t-token" not in page.content.decode()
    data = {"name": "Tele", "kind": "stow", "stow_url": "https://tele.example/dicom-web", "auth_header": "",
            "calling_ae_title": "", "active": "on"}  # fmt: skip
    assert (
        client.post(reverse("admin:sending_destination_change", args=[destination.pk]), data).status_code
        == 302
    )
    destination.refresh_from_db()
    assert destination.auth_header == "Bearer s3cr3t-token"  # left empty: kept


def test_a_worker_sends_and_retries(reference_data, ingest, storescp_start, process_env, celery_worker_start):  # noqa: F811
    """Through the queue: study_send queues the task after its commit, a real worker sends it;
    an unreachable destination is retried by the worker (Celery's retry) until it fails."""
    process_env.update(SEND_ATTEMPTS="2", SEND_RETRY_SECONDS="0")
    celery_worker_start()
    study = two_series_study(ingest)
    peer = storescp_start("+B", "+xa")
    good = study_send(study=study, destination=node_destination(peer.port), actor=ACTOR)
    bad = study_send(
        study=study, destination=node_destination(free_port(), name="Gone", ae="GONE"), actor=ACTOR
    )
    wait_for(lambda: Send.objects.filter(pk__in=[good.pk, bad.pk], state__in=Send.FINISHED).count() == 2,
             timeout=60, message="the worker to finish both sends")  # fmt: skip
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.state, good.completed, good.alert) == (Send.State.DONE, 3, False)
    assert (bad.state, bad.attempts, bad.alert) == (Send.State.FAILED, 2, True)
    assert len(received(peer.folder)) == 3


@pytest.mark.django_db
def test_a_tls_node_gets_the_send_over_tls_and_an_untrusted_one_nothing(
    ingest,
    certificates,
    storescp_tls,
    settings,
    storage_root,  # noqa: F811
):
    settings.DICOM_TLS_CERT = str(certificates / "listener.pem")  # ours, presented (storescp requires one)
    settings.DICOM_TLS_KEY = str(certificates / "listener.key")
    settings.SEND_ATTEMPTS = 1
    study = two_series_study(ingest)
    good = storescp_tls("TLSPEER", "destination")
    send = study_send(study=study, destination=Destination.objects.create(
        name="Tele TLS", node=Modality.objects.get(ae_title="TLSPEER")), actor=ACTOR)  # fmt: skip
    assert send_run(send.pk) == Send.State.DONE
    got = received(good.folder)
    for instance in Instance.objects.filter(series__study=study):
        assert data_set(got[instance.sop_instance_uid]) == data_set(stored_path(storage_root, instance))
    storescp_tls("BADPEER", "untrusted")
    send = study_send(study=study, destination=Destination.objects.create(
        name="Untrusted", node=Modality.objects.get(ae_title="BADPEER")), actor=ACTOR)  # fmt: skip
    assert send_run(send.pk) == Send.State.FAILED
    send.refresh_from_db()
    assert "TLS" in send.error and "certificate" in send.error and send.completed == 0


@pytest.mark.django_db
def test_an_unreachable_stow_endpoint_is_retried_then_fails(ingest, settings):  # noqa: F811
    settings.SEND_ATTEMPTS = 2
    study = two_series_study(ingest)
    destination = Destination.objects.create(name="Web gone", kind=Destination.Kind.STOW,
                                             stow_url=f"http://127.0.0.1:{free_port()}/dicom-web")  # fmt: skip
    send = study_send(study=study, destination=destination, actor=ACTOR)
    assert send_run(send.pk) == RETRY
    assert send_run(send.pk) == Send.State.FAILED
    send.refresh_from_db()
    assert (
        send.alert
        and "Connection refused" in send.error
        and not SendResult.objects.filter(send=send).exists()
    )
