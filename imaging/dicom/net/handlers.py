"""One function per DIMSE event: unpack, call a service, map the result to a status."""

import logging
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import cast

from django.db import DatabaseError, close_old_connections, connections
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND, C_STORE, N_CREATE, N_SET
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import (sop_class.py)
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from imaging.archive.query import Query, Root, archive_find, retrieve_ae_title
from imaging.dicom.net.access import association_allowed, capability_allowed
from imaging.dicom.records.datasets import response_keys, worklist_answer_dataset
from imaging.dicom.records.matching import MatchingError, key_value, unmatched_keys
from imaging.dicom.records.query_answers import answer_build, find_answer, identifier_keys
from imaging.dicom.records.status import (
    CANCELLED,
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DUPLICATE_SOP_INSTANCE,
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_OBJECT_INSTANCE,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    PENDING,
    PENDING_OPTIONAL_KEYS_UNSUPPORTED,
    PROCESSING_FAILURE,
    SUCCESS,
    UNABLE_TO_PROCESS,
    error_comment,
)
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import ObjectRefused, Refusal, instance_receive
from imaging.orders import mpps
from imaging.orders.worklist import worklist_rows
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

log = logging.getLogger("imaging.dicom")


def on_requested(event: Event) -> None:
    """Refuse unregistered callers before anything else happens (A-ASSOCIATE-RJ). A check that
    cannot be made refuses too: pynetdicom accepts the association if this handler raises."""
    requestor = event.assoc.requestor
    primitive = requestor.primitive
    assert primitive is not None  # the A-ASSOCIATE-RQ, received before EVT_REQUESTED
    calling_ae = primitive.calling_ae_title.strip()  # .ae_title is set only later
    try:
        close_old_connections()
        allowed = association_allowed(calling_ae=calling_ae, host=requestor.address)
    except Exception:
        log.exception("refused association from %s at %s: cannot check the caller now",
                      calling_ae, requestor.address)  # fmt: skip
        # PS3.8 9.3.4: rejected-transient (2), service-provider presentation related (3),
        # temporary congestion (1): the caller may try again later.
        event.assoc.acse.send_reject(0x02, 0x03, 0x01)
        _until_sent(event.assoc)
        thread_ended()
        return
    if not allowed:
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
        return _status(STORE_STATUS[refused.reason], refused.detail)
    return SUCCESS


# C-FIND's SOP classes besides the worklist's: the Query/Retrieve information models (PS3.4 C.6).
QUERY_ROOTS = {
    str(PatientRootQueryRetrieveInformationModelFind): Root.PATIENT,
    str(StudyRootQueryRetrieveInformationModelFind): Root.STUDY,
}


def on_find(event: Event) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """C-FIND: the Modality Worklist or the archive's Query/Retrieve, by the request's SOP
    class, for a calling node that may query (a check that cannot be made refuses)."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    try:
        allowed = capability_allowed(calling_ae=calling_ae, capability="query")
    except Exception:
        log.exception("C-FIND from %s refused: cannot check whether it may query", calling_ae)
        yield _status(OUT_OF_RESOURCES, "Cannot check now whether this node may query"), None
        return
    if not allowed:
        log.warning("C-FIND from %s refused: not allowed to query", calling_ae)
        yield _status(NOT_AUTHORIZED, f"{calling_ae} is not allowed to query"), None
        return
    root = QUERY_ROOTS.get(str(cast(C_FIND, event.request).AffectedSOPClassUID))
    if root is None:
        yield from _worklist_find(event, calling_ae)
    else:
        yield from _archive_find(event, calling_ae, root)


def _archive_find(
    event: Event, calling_ae: str, root: Root
) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """Query/Retrieve C-FIND (PS3.4 C.4.1.3): the database matches (imaging/archive/query.py),
    one Pending response per answer, C-CANCEL honoured between responses."""
    try:
        identifier = event.identifier
        keys = response_keys(identifier)
        query = Query(
            level=key_value(identifier, "QueryRetrieveLevel"), keys=identifier_keys(identifier), root=root
        )
        found = archive_find(actor=_actor(event), query=query)
    except MatchingError as error:
        log.warning("query from %s refused: %s", calling_ae, error)
        yield _status(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(error)), None
        return
    except DatabaseError:
        log.exception("query from %s failed", calling_ae)
        yield _status(OUT_OF_RESOURCES, "The archive database is unavailable"), None
        return
    except Exception as error:  # an identifier pydicom cannot decode
        log.warning("query from %s: cannot read the identifier: %s", calling_ae, error)
        yield _status(UNABLE_TO_PROCESS, "Cannot read the query identifier"), None
        return
    log.info("%s query from %s: %d match(es)", found.level, calling_ae, len(found.answers))
    pending = PENDING_OPTIONAL_KEYS_UNSUPPORTED if found.unsupported else PENDING
    ae_title, syntax = retrieve_ae_title(), event.context.transfer_syntax
    for answer in found.answers:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        elements = answer_build(found.level, answer, retrieve_ae_title=ae_title)
        encoded = find_answer(keys, found.level, elements, syntax)
        if encoded is None:  # pydicom cannot encode it in this transfer syntax: say so, not a bare Pending
            yield _status(UNABLE_TO_PROCESS, "Cannot encode an answer in this transfer syntax"), None
            return
        yield pending, encoded


def _worklist_find(event: Event, calling_ae: str) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """Modality Worklist C-FIND (PS3.4 K.4.1.3): the database matches, one Pending response
    per order, C-CANCEL honoured between responses. Each answer is a data set read from its
    encoding in the context's transfer syntax, which it keeps (datasets.worklist_answer_dataset)."""
    try:
        identifier = event.identifier
        keys = response_keys(identifier)
        rows = worklist_rows(identifier=identifier)
        pending = PENDING_OPTIONAL_KEYS_UNSUPPORTED if unmatched_keys(identifier) else PENDING
    except MatchingError as error:
        log.warning("worklist query from %s refused: %s", calling_ae, error)
        yield _status(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(error)), None
        return
    except DatabaseError:
        log.exception("worklist query from %s failed", calling_ae)
        yield _status(OUT_OF_RESOURCES, "The worklist database is unavailable"), None
        return
    except Exception as error:  # an identifier pydicom cannot decode
        log.warning("worklist query from %s: cannot read the identifier: %s", calling_ae, error)
        yield _status(UNABLE_TO_PROCESS, "Cannot read the query identifier"), None
        return
    log.info("worklist query from %s: %d match(es)", calling_ae, len(rows))
    syntax = event.context.transfer_syntax
    for row in rows:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        answer = worklist_answer_dataset(keys, row, syntax)
        if answer is None:  # pydicom cannot encode it in this transfer syntax: say so, not a bare Pending
            yield _status(UNABLE_TO_PROCESS, "Cannot encode a worklist answer in this transfer syntax"), None
            return
        yield pending, answer


def _actor(event: Event) -> Actor:
    return Actor(channel=Channel.DICOM, name=event.assoc.requestor.ae_title.strip())


def on_n_create(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """MPPS N-CREATE: a procedure step starts (PS3.4 F.7.2.1)."""
    uid = cast(N_CREATE, event.request).AffectedSOPInstanceUID  # EVT_N_CREATE's is an N-CREATE
    reply = Dataset()
    if uid is None:  # the SCU may leave the UID to us (PS3.7 10.1.5.1.4)
        uid = reply.AffectedSOPInstanceUID = generate_uid()
    try:
        mpps.mpps_create(
            actor=_actor(event), sop_instance_uid=str(uid), attributes=event.attribute_list,
            station_ae=event.assoc.requestor.ae_title.strip(),
        )  # fmt: skip
    except mpps.StepRefused as refused:
        log.warning("MPPS N-CREATE %s refused: %s", uid, refused.detail)
        return _status(STEP_STATUS[refused.reason], refused.detail), None
    return SUCCESS, reply or None


def on_n_set(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """MPPS N-SET: a procedure step changes or ends (PS3.4 F.7.2.2)."""
    uid = str(cast(N_SET, event.request).RequestedSOPInstanceUID)  # EVT_N_SET's is an N-SET
    try:
        mpps.mpps_update(actor=_actor(event), sop_instance_uid=uid, modifications=event.modification_list)
    except mpps.StepRefused as refused:
        log.warning("MPPS N-SET %s refused: %s", uid, refused.detail)
        return _status(STEP_STATUS[refused.reason], refused.detail), None
    return SUCCESS, None


# The service's reasons, as DIMSE statuses.
STORE_STATUS = {  # C-STORE, PS3.4 B.2.3
    Refusal.DOES_NOT_MATCH: DATASET_DOES_NOT_MATCH_SOP_CLASS,
    Refusal.UNREADABLE: CANNOT_UNDERSTAND,
    Refusal.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
}
STEP_STATUS = {  # MPPS N-CREATE and N-SET, PS3.4 F.7.2.1.4 and F.7.2.2.4
    mpps.StepRefusal.ALREADY_EXISTS: DUPLICATE_SOP_INSTANCE,
    mpps.StepRefusal.NO_SUCH_STEP: NO_SUCH_OBJECT_INSTANCE,
    mpps.StepRefusal.MISSING_ATTRIBUTE: MISSING_ATTRIBUTE,
    mpps.StepRefusal.INVALID_ATTRIBUTE_VALUE: INVALID_ATTRIBUTE_VALUE,
    mpps.StepRefusal.FINAL: PROCESSING_FAILURE,  # "may no longer be updated" (Error ID A710)
}


def _status(code: int, comment: str) -> Dataset:
    """A failure status with its Error Comment (PS3.7 C.4: LO, 64 characters)."""
    status = Dataset()
    status.Status = code
    status.ErrorComment = error_comment(comment)
    return status


HANDLERS: list[EventHandlerType] = [
    (evt.EVT_REQUESTED, on_requested),
    (evt.EVT_ESTABLISHED, on_established),
    (evt.EVT_RELEASED, on_ended),
    (evt.EVT_ABORTED, on_ended),
    (evt.EVT_CONN_CLOSE, on_closed),
    (evt.EVT_C_STORE, on_store),
    (evt.EVT_C_FIND, on_find),
    (evt.EVT_N_CREATE, on_n_create),
    (evt.EVT_N_SET, on_n_set),
]
