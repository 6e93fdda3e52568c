"""DICOM TLS when the listener is the one that connects (PS3.15 B.9): C-MOVE's sub-operations to
a move destination registered with "use TLS" (a real dcmtk storescp +tls), and a Storage
Commitment report on a new association to such a node (a pynetdicom SCP over TLS). A destination
whose certificate we do not trust, or that names another host, gets nothing: the C-MOVE ends at
once with A702 and an Error Comment that says why; the report is kept undeliverable with the
reason. Run with the fast path on and off (the C-MOVE is the listener's)."""

import signal
import socket
import subprocess
import types
from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelMove,
)

from imaging.archive.tasks import commitment_report_task
from imaging.dicom.net.tls import client_context, server_context
from imaging.models import Instance, Modality, StorageCommitment
from tests.conftest import free_port, tool_required, wait_for
from tests.studies import make_study
from vetclinic.audit.models import AuditEntry


@pytest.fixture
def certificates(tmp_path):
    """A test CA; certificates it signed for the listener (localhost, 127.0.0.1), a destination
    (127.0.0.1) and one that names another host; and a self-signed one nobody trusts (PEM)."""
    openssl = tool_required("/usr/bin/openssl")
    folder = tmp_path / "tls"
    folder.mkdir()

    def run(*args):
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=VetPACS test CA", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    for name, names in [("listener", "DNS:localhost,IP:127.0.0.1"), ("destination", "IP:127.0.0.1"),
                        ("elsewhere", "DNS:elsewhere.example")]:  # fmt: skip
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        (folder / f"{name}.ext").write_text(f"subjectAltName={names}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=untrusted", "-days", "2",
        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "untrusted.key", "-out", "untrusted.pem")  # fmt: skip
    return folder


@pytest.fixture
def tls_listener(reference_data, dicom_listener_start, certificates):
    """The listener with its certificate (which it also presents when it connects), and a
    workstation that may retrieve."""
    Modality.objects.create(ae_title="RETRIEVER", host="127.0.0.1", modality_type="OT", may_retrieve=True)
    tls = certificates
    return dicom_listener_start(
        DICOM_TLS_CERT=str(tls / "listener.pem"), DICOM_TLS_KEY=str(tls / "listener.key")
    )


@pytest.fixture
def storescp_tls(tmp_path, certificates):
    """dcmtk's storescp over TLS with ``name``'s certificate (it requires ours, signed by the test
    CA: dcmtk's default), registered as a TLS move destination."""
    storescp = tool_required("/usr/bin/storescp")
    started = []

    def start(ae_title, name, **node):
        folder = tmp_path / ae_title
        folder.mkdir()
        port = free_port()
        tls = certificates
        process = subprocess.Popen(
            [storescp, "+B", "+xa", "+tls", str(tls / f"{name}.key"), str(tls / f"{name}.pem"),
             "+cf", str(tls / "ca.pem"), "-aet", ae_title, "-od", str(folder), str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=20, message="storescp")
        fields = {"tls": True, "tls_ca_certificates": (tls / "ca.pem").read_text(), **node}
        Modality.objects.create(ae_title=ae_title, host="127.0.0.1", port=port, modality_type="OT",
                                move_destination=True, **fields)  # fmt: skip
        return types.SimpleNamespace(ae_title=ae_title, port=port, folder=folder, process=process)

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def move(listener, certificates, study_uid, destination):
    """A C-MOVE of a study over TLS to the listener; its responses."""
    ae = AE(ae_title="RETRIEVER")
    ae.dimse_timeout = ae.acse_timeout = ae.network_timeout = 60  # nothing may hang
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    context = client_context(ca=certificates / "ca.pem")
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS", tls_args=(context, "localhost"))
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    try:
        return list(assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove))
    finally:
        assoc.release()


def test_a_tls_move_destination_receives_the_study_over_tls(tls_listener, certificates, storescp_tls):
    study = make_study(series=1, images=3)
    destination = storescp_tls("WORKSTATION", "destination")
    *pending, (final, _) = move(tls_listener, certificates, study.study_instance_uid, "WORKSTATION")
    assert [status.Status for status, _ in pending] == [0xFF00] * 3
    assert (final.Status, final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (
        0x0000, 3, 0,
    )  # fmt: skip
    arrived = {str(pydicom.dcmread(path).StudyInstanceUID) for path in Path(destination.folder).iterdir()}
    assert arrived == {study.study_instance_uid} and len(list(destination.folder.iterdir())) == 3


@pytest.mark.parametrize(
    ("certificate", "node", "why"),
    [
        ("untrusted", {}, "self-signed certificate"),
        ("elsewhere", {}, "address mismatch"),
    ],
    ids=["certificate not trusted", "certificate names another host"],
)
def test_a_destination_whose_certificate_does_not_pass_gets_nothing_and_the_move_says_why(
    tls_listener, certificates, storescp_tls, certificate, node, why
):
    study = make_study(series=1, images=2)
    destination = storescp_tls("WORKSTATION", certificate, **node)
    responses = move(tls_listener, certificates, study.study_instance_uid, "WORKSTATION")
    [(final, identifier)] = responses  # no Pending: nothing was sent
    assert final.Status == 0xA702  # Refused: out of resources, unable to perform sub-operations
    assert final.ErrorComment.startswith("TLS to WORKSTATION failed: ") and why in final.ErrorComment
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (0, 2)
    sent = Instance.objects.filter(series__study=study).values_list("sop_instance_uid", flat=True)
    assert sorted(identifier.FailedSOPInstanceUIDList) == sorted(sent)
    assert list(destination.folder.iterdir()) == []
    assert destination.process.poll() is None  # and the destination still listens
    entry = AuditEntry.objects.get(action="retrieve")
    assert (entry.changes["destination"], entry.changes["completed"], entry.changes["failed"]) == (
        [None, "WORKSTATION"], [None, 0], [None, 2],
    )  # fmt: skip


def test_a_certificate_that_names_another_host_passes_when_the_node_says_not_to_check_it(
    tls_listener, certificates, storescp_tls
):
    study = make_study(series=1, images=1)
    destination = storescp_tls("WORKSTATION", "elsewhere", tls_check_hostname=False)
    *_, (final, _) = move(tls_listener, certificates, study.study_instance_uid, "WORKSTATION")
    assert (final.Status, final.NumberOfCompletedSuboperations) == (0x0000, 1)
    assert len(list(destination.folder.iterdir())) == 1


def commitment_scp_tls(certificates, port, certificate, received):
    """A modality's storage commitment SCP over TLS (it asks for no client certificate)."""
    scp = AE(ae_title="CTMOD")
    scp.add_supported_context(
        StorageCommitmentPushModel, ExplicitVRLittleEndian, scu_role=True, scp_role=True
    )

    def report(event):
        received.append((event.request.EventTypeID, event.event_information.TransactionUID))
        return 0x0000, None

    context = server_context(
        cert=certificates / f"{certificate}.pem", key=certificates / f"{certificate}.key"
    )
    return scp.start_server(("127.0.0.1", port), block=False, ssl_context=context,
                            evt_handlers=[(evt.EVT_N_EVENT_REPORT, report)])  # fmt: skip


@pytest.mark.parametrize(("certificate", "delivered"), [("destination", True), ("untrusted", False)])
def test_a_storage_commitment_report_goes_over_tls_to_a_tls_node(
    reference_data, storage_root, settings, certificates, certificate, delivered
):
    settings.COMMITMENT_DELIVERY_ATTEMPTS = 1
    settings.DICOM_TLS_CERT = str(certificates / "listener.pem")
    settings.DICOM_TLS_KEY = str(certificates / "listener.key")
    node = Modality.objects.create(
        ae_title="CTMOD", host="127.0.0.1", port=free_port(), modality_type="CT", tls=True,
        tls_ca_certificates=(certificates / "ca.pem").read_text(),
    )  # fmt: skip
    never = [str(CTImageStorage), generate_uid()]  # never received: settled (failed) at once
    row = StorageCommitment.objects.create(
        transaction_uid=generate_uid(), calling_ae="CTMOD", node=node, requested=[never]
    )
    received = []
    server = commitment_scp_tls(certificates, node.port, certificate, received)
    try:
        outcome = commitment_report_task.apply(args=[row.pk]).get()
    finally:
        server.shutdown()
    row.refresh_from_db()
    if delivered:
        assert (outcome, row.state, received) == ("reported", "reported", [(2, row.transaction_uid)])
    else:
        assert (outcome, row.state, received) == ("undeliverable", "undeliverable", [])
        assert "TLS with CTMOD at 127.0.0.1" in row.last_error and "self-signed certificate" in row.last_error


def test_a_tls_node_needs_a_host_and_a_port_and_its_authorities_must_be_certificates(
    reference_data, certificates
):
    with pytest.raises(ValidationError) as raised:
        Modality(ae_title="WS", modality_type="OT", host="10.0.0.5", tls=True).full_clean()
    assert "needs a host and a port" in str(raised.value.message_dict["port"])
    with pytest.raises(ValidationError) as raised:
        Modality(ae_title="WS", modality_type="OT", host="10.0.0.5", port=104, tls=True,
                 tls_ca_certificates="not a certificate").full_clean()  # fmt: skip
    assert "Not PEM certificates" in str(raised.value.message_dict["tls_ca_certificates"])
    Modality(ae_title="WS", modality_type="OT", host="10.0.0.5", port=104, tls=True,
             tls_ca_certificates=(certificates / "ca.pem").read_text()).full_clean()  # fmt: skip
