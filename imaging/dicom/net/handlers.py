"""One function per DIMSE event: unpack, call a service, map the result to a status. The
association events, C-STORE, MPPS and Storage Commitment are here; C-FIND in handlers_query.py,
C-MOVE and C-GET in handlers_retrieve.py; what they all answer with in replies.py."""

import logging
import time
from io import BytesIO
from pathlib import Path
from typing import cast

from django.db import DatabaseError, close_old_connections, connections
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE, N_ACTION, N_CREATE, N_SET
from pynetdicom.events import Event, EventHandlerType

from imaging.archive import commitment
from imaging.dicom.net.access import (
    association_may,
    association_rights,
    association_rights_keep,
)
from imaging.dicom.net.commitment import report_follow
from imaging.dicom.net.handlers_query import on_find, on_sop_extended
from imaging.dicom.net.handlers_retrieve import on_get, on_move
from imaging.dicom.net.replies import event_actor, not_authorized, status_with_comment
from imaging.dicom.records.status import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_ACTION,
    NO_SUCH_OBJECT_INSTANCE,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SUCCESS,
)
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import ObjectRefused, Refusal, instance_receive, source_discard
from imaging.orders import mpps

log = logging.getLogger("imaging.dicom")


def on_requested(event: Event) -> None:
    """Refuse unregistered callers before anything else happens (A-ASSOCIATE-RJ), and keep what
    a registered one may do for its requests to read (access.Rights: decided once here, not per
    request). A check that cannot be made refuses too: pynetdicom accepts the association if this
    handler raises."""
    requestor = event.assoc.requestor
    primitive = requestor.primitive
    assert primitive is not None  # the A-ASSOCIATE-RQ, received before EVT_REQUESTED
    calling_ae = primitive.calling_ae_title.strip()  # .ae_title is set only later
    try:
        close_old_connections()
        rights = association_rights(calling_ae=calling_ae, host=requestor.address)
    except Exception:
        log.exception("refused association from %s at %s: cannot check the caller now",
                      calling_ae, requestor.address)  # fmt: skip
        # PS3.8 9.3.4: rejected-transient (2), service-provider presentation related (3),
        # temporary congestion (1): the caller may try again later.
        event.assoc.acse.send_reject(0x02, 0x03, 0x01)
        _until_sent(event.assoc)
        thread_ended()
        return
    if rights is not None:
        association_rights_keep(event.assoc, rights)
    else:
        log.warning(
            "refused association from %s at %s: not a registered modality", calling_ae, requestor.address
        )
        # PS3.8 9.3.4: rejected-permanent (1), service-user (1), calling AE title not recognized (3)
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)
        _until_sent(event.assoc)
        thread_ended()  # the association's thread ends with the rejection


def _until_sent(assoc: Association, timeout: float = 2.0) -> None:
    """Wait until the DUL thread has sent the rejection (state Sta13, PS3.8 9.2): pynetdicom closes
    the socket as soon as this handler returns, and the caller would see an abort instead."""
    deadline = time.monotonic() + timeout
    while assoc.dul.state_machine.current_state != "Sta13" and time.monotonic() < deadline:
        time.sleep(0.001)


def on_established(event: Event) -> None:
    requestor = event.assoc.requestor
    log.info("association from %s at %s:%s", requestor.ae_title.strip(), requestor.address, requestor.port)


def on_ended(event: Event) -> None:
    """Released or aborted: queue the association's last indexing messages now, not when
    the peer gets round to closing the connection. This is the association's own thread, which
    ends now: the database connection it used goes back (thread_ended)."""
    association_finish(event.assoc)
    thread_ended()


def association_finish(assoc: Association) -> None:
    """Queue what the association stored and has not queued yet. The fast path also calls it
    when the association's thread ends, whatever ended it (fast/reactor.py): an association
    that ends without a release or an abort event (its DUL thread failed) must not leave
    acknowledged objects to the sweep. Calling it twice queues nothing twice."""
    batch = getattr(assoc, "ingest_batch", None)
    if batch is not None:
        batch.flush()


def on_closed(event: Event) -> None:
    """The connection closed (pynetdicom tells on the thread that reads the socket): as
    on_ended, for an association that ended without a release or an abort."""
    on_ended(event)


def thread_ended() -> None:
    """An association's thread (its reactor's or its DUL's) ends: the database connection it
    used (Django keeps one per thread) goes back to the listener's pool, or closes. Left to the
    garbage collector it would close without the pool knowing, which would count it in use
    for ever."""
    connections.close_all()


def on_store(event: Event) -> Dataset | int:
    """C-STORE: keep the object as it came, then answer (PS3.4 B.2.3 statuses). pynetdicom
    has written its data set to a file (``event.dataset_path``, STORE_RECV_CHUNKED_DATASET) or
    holds it in memory (``event.request.DataSet``); the service takes either as it is."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    request = cast(C_STORE, event.request)  # EVT_C_STORE's is a C-STORE (pynetdicom types any)
    batch: IngestBatch | None = getattr(event.assoc, "ingest_batch", None)
    if batch is None:  # one per association, flushed when it closes; ours, on pynetdicom's object
        batch = event.assoc.ingest_batch = IngestBatch()  # type: ignore[attr-defined]
    # pynetdicom gives one or the other: a C-STORE request has a data set (PS3.7 9.1.1.1).
    source = cast(Path | BytesIO, event.dataset_path or request.DataSet)
    if not association_may(event.assoc, "store"):
        source_discard(source)
        return not_authorized(calling_ae, "store")
    try:
        instance_receive(
            source=source,
            transfer_syntax=event.context.transfer_syntax,
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            calling_ae=calling_ae,
            batch=batch,
        )
    except ObjectRefused as refused:
        log.warning(
            "C-STORE %s from %s refused: %s", request.AffectedSOPInstanceUID, calling_ae, refused.detail
        )
        return status_with_comment(STORE_STATUS[refused.reason], refused.detail)
    return SUCCESS


def on_n_create(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """MPPS N-CREATE: a procedure step starts (PS3.4 F.7.2.1)."""
    uid = cast(N_CREATE, event.request).AffectedSOPInstanceUID  # EVT_N_CREATE's is an N-CREATE
    if not association_may(event.assoc, "store"):  # MPPS goes with storing (access.Rights)
        return not_authorized(event.assoc.requestor.ae_title.strip(), "store"), None
    reply = Dataset()
    if uid is None:  # the SCU may leave the UID to us (PS3.7 10.1.5.1.4)
        uid = reply.AffectedSOPInstanceUID = generate_uid()
    try:
        mpps.mpps_create(
            actor=event_actor(event), sop_instance_uid=str(uid), attributes=event.attribute_list,
            station_ae=event.assoc.requestor.ae_title.strip(),
        )  # fmt: skip
    except mpps.StepRefused as refused:
        log.warning("MPPS N-CREATE %s refused: %s", uid, refused.detail)
        return status_with_comment(STEP_STATUS[refused.reason], refused.detail), None
    return SUCCESS, reply or None


def on_n_set(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """MPPS N-SET: a procedure step changes or ends (PS3.4 F.7.2.2)."""
    uid = str(cast(N_SET, event.request).RequestedSOPInstanceUID)  # EVT_N_SET's is an N-SET
    if not association_may(event.assoc, "store"):  # MPPS goes with storing (access.Rights)
        return not_authorized(event.assoc.requestor.ae_title.strip(), "store"), None
    try:
        mpps.mpps_update(
            actor=event_actor(event), sop_instance_uid=uid, modifications=event.modification_list
        )
    except mpps.StepRefused as refused:
        log.warning("MPPS N-SET %s refused: %s", uid, refused.detail)
        return status_with_comment(STEP_STATUS[refused.reason], refused.detail), None
    return SUCCESS, None


def on_n_action(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """Storage Commitment N-ACTION (PS3.4 J.3.2): the request is recorded and answered at once;
    the report (N-EVENT-REPORT) follows when what it names is indexed, on this association or a
    new one (net/commitment.py report_follow)."""
    request = cast(N_ACTION, event.request)  # EVT_N_ACTION's is an N-ACTION
    calling_ae = event.assoc.requestor.ae_title.strip()
    if not association_may(event.assoc, "store"):
        return not_authorized(calling_ae, "store"), None
    association_finish(event.assoc)  # what this association stored goes to indexing now
    try:
        information = event.action_information
    except Exception as error:  # pydicom cannot decode it
        log.warning("storage commitment from %s: cannot read the request: %s", calling_ae, error)
        return status_with_comment(PROCESSING_FAILURE, "Cannot read the Action Information"), None
    try:
        requested = commitment.commitment_request(
            actor=event_actor(event), calling_ae=calling_ae, action_type_id=request.ActionTypeID,
            requested_instance_uid=str(request.RequestedSOPInstanceUID), information=information,
        )  # fmt: skip
    except commitment.CommitmentRefused as refused:
        log.warning("storage commitment from %s refused: %s", calling_ae, refused.detail)
        return status_with_comment(COMMITMENT_STATUS[refused.reason], refused.detail), None
    except DatabaseError:
        log.exception("storage commitment from %s: cannot record the request", calling_ae)
        return status_with_comment(
            PROCESSING_FAILURE, "Cannot record the request now; send it again later"
        ), None
    log.info("storage commitment %s from %s: %d object(s)", requested.transaction_uid, calling_ae,
             len(requested.requested))  # fmt: skip
    report_follow(event.assoc, commitment_id=requested.pk, context_id=event.context.context_id)
    return SUCCESS, None


# The service's reasons, as DIMSE statuses.
STORE_STATUS = {  # C-STORE, PS3.4 B.2.3
    Refusal.DOES_NOT_MATCH: DATASET_DOES_NOT_MATCH_SOP_CLASS,
    Refusal.UNREADABLE: CANNOT_UNDERSTAND,
    Refusal.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
    # (Never for a C-STORE: its transfer syntax was negotiated from those we accept.)
    Refusal.SYNTAX_NOT_SUPPORTED: CANNOT_UNDERSTAND,
}
STEP_STATUS = {  # MPPS N-CREATE and N-SET, PS3.4 F.7.2.1.4 and F.7.2.2.4
    mpps.StepRefusal.ALREADY_EXISTS: DUPLICATE_SOP_INSTANCE,
    mpps.StepRefusal.NO_SUCH_STEP: NO_SUCH_OBJECT_INSTANCE,
    mpps.StepRefusal.MISSING_ATTRIBUTE: MISSING_ATTRIBUTE,
    mpps.StepRefusal.INVALID_ATTRIBUTE_VALUE: INVALID_ATTRIBUTE_VALUE,
    mpps.StepRefusal.FINAL: PROCESSING_FAILURE,  # "may no longer be updated" (Error ID A710)
}


COMMITMENT_STATUS = {  # N-ACTION, PS3.7 10.1.4.1.10 and Annex C
    commitment.Refusal.NO_SUCH_ACTION: NO_SUCH_ACTION,
    commitment.Refusal.NO_SUCH_INSTANCE: NO_SUCH_OBJECT_INSTANCE,
    commitment.Refusal.MISSING_ATTRIBUTE: MISSING_ATTRIBUTE,
    commitment.Refusal.INVALID_VALUE: INVALID_ATTRIBUTE_VALUE,
}


HANDLERS: list[EventHandlerType] = [
    (evt.EVT_REQUESTED, on_requested),
    (evt.EVT_ESTABLISHED, on_established),
    (evt.EVT_RELEASED, on_ended),
    (evt.EVT_ABORTED, on_ended),
    (evt.EVT_CONN_CLOSE, on_closed),
    (evt.EVT_C_STORE, on_store),
    (evt.EVT_C_FIND, on_find),
    (evt.EVT_SOP_EXTENDED, on_sop_extended),
    (evt.EVT_C_MOVE, on_move),
    (evt.EVT_C_GET, on_get),
    (evt.EVT_N_CREATE, on_n_create),
    (evt.EVT_N_SET, on_n_set),
    (evt.EVT_N_ACTION, on_n_action),
]
