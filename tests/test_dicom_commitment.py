"""Storage Commitment Push Model (PS3.4 J) on a real socket: pynetdicom as the modality stores
images through the listener, asks for commitment with N-ACTION, and hears the N-EVENT-REPORT on
its own association, or, when it released first, on a new association to the SCP it registered
(host and port of its modality record). A real worker indexes what was stored."""

import queue
from datetime import timedelta

import pydicom
import pytest
from django.utils.timezone import now
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from imaging.archive.tasks import commitment_report_task, commitments_sweep
from imaging.models import Modality, StorageCommitment
from tests.conftest import free_port, wait_for
from tests.test_dicom_store import fresh_copy

REPORT_WAIT = 120  # seconds a report may take: a worker starts and indexes meanwhile


@pytest.fixture(autouse=True)
def send_files_as_they_are(monkeypatch):
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)


@pytest.fixture
def modality(reference_data):
    """The CT room: it stores, and takes reports on its own storage commitment SCP."""
    return Modality.objects.create(ae_title="CTMOD", host="127.0.0.1", port=free_port(), modality_type="CT")


class Reports:
    """N-EVENT-REPORTs received, (event type, event information), in a queue to wait on."""

    def __init__(self):
        self.received = queue.Queue()
        self.messages = []  # the DIMSE messages the modality received, in the order they came

    def message_received(self, event):
        self.messages.append(type(event.message).__name__)

    def handle(self, event):
        roles = [(cx.as_scu, cx.as_scp) for cx in event.assoc.accepted_contexts
                 if cx.abstract_syntax == StorageCommitmentPushModel]  # fmt: skip
        self.received.put(
            (event.request.EventTypeID, event.event_information, event.assoc.is_requestor, roles)
        )
        return 0x0000, None

    def next(self):
        return self.received.get(timeout=REPORT_WAIT)


def associate(listener, reports=None, calling="CTMOD"):
    ae = AE(ae_title=calling)
    ae.dimse_timeout = ae.network_timeout = REPORT_WAIT
    for context in (CTImageStorage, MRImageStorage, StorageCommitmentPushModel):
        ae.add_requested_context(context, ExplicitVRLittleEndian)
    handlers = (
        [(evt.EVT_N_EVENT_REPORT, reports.handle), (evt.EVT_DIMSE_RECV, reports.message_received)]
        if reports
        else []
    )
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS", evt_handlers=handlers)
    assert assoc.is_established
    return assoc


def store(assoc, tmp_path, *names):
    """Store fresh copies of bundled files; returns their (SOP Class UID, SOP Instance UID)."""
    sent = []
    for name in names:
        path = fresh_copy(name, tmp_path)
        assert assoc.send_c_store(path).Status == 0x0000
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        sent.append((str(ds.SOPClassUID), str(ds.SOPInstanceUID)))
    return sent


def commitment_ask(assoc, references, transaction_uid=None):
    """N-ACTION Request Storage Commitment (PS3.4 J.3.2); returns (status, Transaction UID)."""
    request = Dataset()
    request.TransactionUID = transaction_uid or generate_uid()
    items = []
    for sop_class, instance in references:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, instance
        items.append(item)
    request.ReferencedSOPSequence = items
    status, _reply = assoc.send_n_action(
        request, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
    )
    return status, request.TransactionUID


def reported(transaction_uid):
    """The request once the listener or the task has recorded its report as delivered: it does
    so when the modality's answer to it arrives, after the modality's handler has run."""
    return wait_for(
        lambda: StorageCommitment.objects.filter(transaction_uid=transaction_uid, state="reported").first(),
        timeout=30, message="the report recorded as delivered",
    )  # fmt: skip


def referenced(information, sequence="ReferencedSOPSequence"):
    return [
        (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID)
        + ((item.FailureReason,) if sequence == "FailedSOPSequence" else ())
        for item in information.get(sequence, [])
    ]


def test_objects_stored_but_not_yet_indexed_are_waited_for_and_reported_committed_on_the_same_association(
    modality, dicom_listener_start, celery_worker_start, tmp_path
):
    # However long the worker takes to start on a busy machine, the report stays on this association.
    listener = dicom_listener_start(COMMITMENT_ASSOCIATION_WAIT="50")  # under its 60 s idle timeout
    reports = Reports()
    assoc = associate(listener, reports)
    sent = store(assoc, tmp_path, "CT_small.dcm", "MR_small.dcm")
    # No worker yet: nothing is indexed when the request comes. An object stored and not yet
    # indexed must be waited for, not reported failed.
    status, transaction_uid = commitment_ask(assoc, sent)
    assert status.Status == 0x0000
    celery_worker_start()

    event_type, information, we_requested, _roles = reports.next()
    row = reported(transaction_uid)  # our answer reached the listener before we release
    assoc.release()
    assert we_requested  # it came on the modality's own association
    assert event_type == 1  # all committed
    assert information.TransactionUID == transaction_uid
    assert sorted(referenced(information)) == sorted(sent)
    assert "FailedSOPSequence" not in information
    assert information.RetrieveAETitle == "VETPACS"
    assert (row.state, row.reported_via, row.calling_ae) == ("reported", "same association", "CTMOD")
    assert row.node == modality


def test_an_unknown_instance_and_a_wrong_class_are_in_the_failed_list(
    modality, dicom_listener, celery_worker, tmp_path
):
    reports = Reports()
    assoc = associate(dicom_listener, reports)
    (ct,) = store(assoc, tmp_path, "CT_small.dcm")
    (mr,) = store(assoc, tmp_path, "MR_small.dcm")
    unknown = (CTImageStorage, generate_uid())
    wrong_class = (CTImageStorage, mr[1])  # stored as MR
    status, transaction_uid = commitment_ask(assoc, [ct, unknown, wrong_class])
    assert status.Status == 0x0000

    event_type, information, _, _ = reports.next()
    row = reported(transaction_uid)
    assoc.release()
    assert event_type == 2  # failures exist
    assert information.TransactionUID == transaction_uid
    assert referenced(information) == [ct]
    assert sorted(referenced(information, "FailedSOPSequence")) == sorted([
        (*unknown, 0x0112),  # no such object instance (PS3.4 J.3.3.1.4)
        (*wrong_class, 0x0119),  # class / instance conflict
    ])  # fmt: skip
    assert row.state == "reported" and len(row.failed) == 2


def test_when_the_modality_released_first_the_report_comes_on_a_new_association_to_its_registered_scp(
    modality, dicom_listener, celery_worker_start, tmp_path
):
    reports = Reports()
    server = commitment_scp_start(modality, reports)
    try:
        assoc = associate(dicom_listener)
        sent = store(assoc, tmp_path, "CT_small.dcm", "MR_small.dcm")
        status, transaction_uid = commitment_ask(assoc, sent)
        assert status.Status == 0x0000
        assoc.release()  # before anything could be indexed: no worker runs yet
        celery_worker_start()

        event_type, information, we_requested, roles = reports.next()
        row = reported(transaction_uid)  # our answer reached the listener's task before we stop
    finally:
        server.shutdown()
    assert event_type == 1
    assert information.TransactionUID == transaction_uid
    assert sorted(referenced(information)) == sorted(sent)
    assert (row.state, row.reported_via) == ("reported", "new association")
    assert not we_requested  # the listener called us
    assert roles == [(True, False)]  # here the SCU of the SOP Class, the listener its SCP


def commitment_scp_start(modality, reports):
    """The modality's own storage commitment SCP, where reports come when it has released."""
    scp = AE(ae_title=modality.ae_title)
    # We are that association's requestor and the SOP Class's SCP: the listener proposes the SCP
    # role for itself (PS3.4 J.3.3.1.2, PS3.7 D.3.3.4); the modality accepts it.
    scp.add_supported_context(
        StorageCommitmentPushModel, ExplicitVRLittleEndian, scu_role=True, scp_role=True
    )
    return scp.start_server(("127.0.0.1", modality.port), block=False,
                            evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)])  # fmt: skip


def test_a_report_the_modality_could_not_take_is_sent_again_until_it_does(
    modality, dicom_listener, celery_worker_start, tmp_path
):
    assoc = associate(dicom_listener)
    sent = store(assoc, tmp_path, "CT_small.dcm")
    status, transaction_uid = commitment_ask(assoc, sent)
    assert status.Status == 0x0000
    assoc.release()
    celery_worker_start()  # indexes, settles, and finds nobody listening at the modality's port

    row = wait_for(lambda: StorageCommitment.objects.filter(transaction_uid=transaction_uid, attempts__gte=1).first(),
                   timeout=REPORT_WAIT, message="a first delivery that failed")  # fmt: skip
    assert row.state == "settled" and "could not be made" in row.last_error
    reports = Reports()
    server = commitment_scp_start(modality, reports)
    try:
        event_type, information, _, _ = reports.next()
        row = reported(transaction_uid)
    finally:
        server.shutdown()
    assert (event_type, information.TransactionUID) == (1, transaction_uid)
    assert (row.state, row.reported_via) == ("reported", "new association")
    assert row.attempts >= 1


def test_a_request_without_a_transaction_uid_or_for_another_instance_is_refused_with_its_status(
    modality, dicom_listener
):
    assoc = associate(dicom_listener)
    request = Dataset()
    request.ReferencedSOPSequence = [Dataset()]
    request.ReferencedSOPSequence[0].ReferencedSOPClassUID = CTImageStorage
    request.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = generate_uid()
    status, _ = assoc.send_n_action(
        request, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
    )
    assert (status.Status, status.ErrorComment) == (0x0120, "Transaction UID is missing")
    request.TransactionUID = generate_uid()
    status, _ = assoc.send_n_action(
        request, 2, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
    )
    assert status.Status == 0x0123  # no such action
    status, _ = assoc.send_n_action(request, 1, StorageCommitmentPushModel, generate_uid())
    assert status.Status == 0x0112  # not the well-known instance
    assoc.release()
    assert not StorageCommitment.objects.exists()


def test_objects_never_received_are_reported_failed_at_once_and_only_after_the_answer(
    modality, dicom_listener
):
    # No worker, nothing stored: nothing to wait for. The report is ready as the request is
    # recorded, and must still come after the N-ACTION's answer (PS3.4 J.3.3: a requestor waiting
    # for that answer may take the report for it; pynetdicom's own serves it on the side).
    reports = Reports()
    assoc = associate(dicom_listener, reports)
    never = [(CTImageStorage, generate_uid()), (MRImageStorage, generate_uid())]
    status, transaction_uid = commitment_ask(assoc, never)
    assert status.Status == 0x0000

    event_type, information, _, _ = reports.next()
    reported(transaction_uid)
    assoc.release()
    assert event_type == 2
    assert information.TransactionUID == transaction_uid
    assert "ReferencedSOPSequence" not in information
    assert sorted(referenced(information, "FailedSOPSequence")) == sorted((*ref, 0x0112) for ref in never)
    assert reports.messages == ["N_ACTION_RSP", "N_EVENT_REPORT_RQ"]


@pytest.mark.django_db
def test_a_report_with_nowhere_to_go_is_kept_undeliverable_with_the_reason(storage_root):
    node = Modality.objects.create(ae_title="NOPORT", modality_type="CT")  # no host, no port
    never = [str(CTImageStorage), generate_uid()]
    row = StorageCommitment.objects.create(
        transaction_uid=generate_uid(), calling_ae="NOPORT", node=node, requested=[never]
    )
    assert commitment_report_task.apply(args=[row.pk]).get() == "undeliverable"
    row.refresh_from_db()
    assert row.state == "undeliverable" and row.failed == [[*never, 0x0112]]
    assert "no host and port" in row.last_error


@pytest.mark.django_db
def test_the_sweep_queues_again_only_the_open_requests_nothing_worked_on_for_a_while(monkeypatch):
    def request(state):
        return StorageCommitment.objects.create(
            transaction_uid=generate_uid(), calling_ae="CTMOD", state=state
        )

    forgotten, _recent, done = request("pending"), request("settled"), request("reported")
    StorageCommitment.objects.filter(pk__in=[forgotten.pk, done.pk]).update(
        updated=now() - timedelta(hours=1)
    )
    queued = []
    monkeypatch.setattr(commitment_report_task, "delay", queued.append)
    assert commitments_sweep() == 1
    assert queued == [forgotten.pk]
