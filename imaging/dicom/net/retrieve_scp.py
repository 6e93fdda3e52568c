"""The Query/Retrieve C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3): the protocol around
handlers.on_move and handlers.on_get, in place of pynetdicom's.

pynetdicom's own (service_class.QueryRetrieveServiceClass) cannot do three things an archive
must: refuse a C-MOVE with an Error Comment before it has connected to the destination (an
unknown destination, a caller that may not retrieve, a bad identifier); send a stored object from
its file as it is (it takes data sets only, decoded and encoded again); and choose each object's
transfer syntax from what the peer accepted (the handler yields data sets before it can know).
pynetdicom has no public way to give a standard SOP class another service class
(sop_class.uid_to_service_class is fixed), so the listener's associations are RetrieveAssociation,
whose one override hands C-MOVE and C-GET requests here (ae.py; the fast path's association
derives from it). Everything else is pynetdicom's: the events and the Event the handlers see,
C-CANCEL (event.is_cancelled), the C-STORE sub-operations (Association.send_c_store).

The handlers' side, as pynetdicom documents it for EVT_C_MOVE and EVT_C_GET, with two additions:
- on_move yields the destination ``(host, port, kwargs)`` (kwargs for AE.associate: the storage
  contexts, move_contexts), then the number of sub-operations; on_get yields the number. Either
  may yield, in place of these, a status Dataset (Status and Error Comment): a refusal, answered
  as it is before anything is sent.
- Then ``(PENDING, RetrievedInstance)`` per object, ``(CANCELLED, None)`` on C-CANCEL, or a failure
  status to stop. The object is sent here (archive/retrieve.instance_sendable: the file as stored
  when the peer accepts its transfer syntax, else decompressed); the outcome ("completed",
  "failed", "warning") is sent back into the generator as the value of its yield.
"""

import logging
from collections.abc import Generator
from io import BytesIO
from typing import Any, Protocol, cast

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.acse import ACSE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE, DimseServiceType
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.service_class import QueryRetrieveServiceClass
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import (sop_class.py)
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from imaging.archive.retrieve import InstanceUnavailable, RetrievedInstance, instance_sendable
from imaging.archive.transcode import LOSSLESS_ENCODABLE
from imaging.dicom.net.tls import handshake_failure
from imaging.dicom.records.status import (
    CANCELLED,
    MOVE_DESTINATION_UNKNOWN,
    PENDING,
    SUB_OPERATIONS_FAILED,
    SUB_OPERATIONS_WARNING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    error_comment,
)

log = logging.getLogger("imaging.dicom")

MOVE_MODELS = (PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove)
GET_MODELS = (PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet)
# PS3.8 9.3.2.2: presentation context IDs are odd numbers 1 to 255, so 128 contexts at most.
MOST_CONTEXTS = 128
# The Error Comment when a handler raised (the traceback is in the listener's log).
HANDLER_FAILED = "The retrieve failed: see the listener's log"
UNCOMPRESSED: list[str | UID] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
# The transfer syntaxes we can send any object in (transcode.py): uncompressed, or losslessly compressed.
WRITABLE = {*map(str, UNCOMPRESSED), *LOSSLESS_ENCODABLE}

# A handler's yields (see the module's docstring).
Yielded = Any
Items = Generator[Yielded, str | None, None]


class RetrieveAssociation(Association):
    """pynetdicom's association, with C-MOVE and C-GET requests served by RetrieveService."""

    def _serve_request(self, msg: DimseServiceType, context_id: int) -> None:
        context = self._accepted_cx.get(context_id)
        if (type(msg) not in (C_MOVE, C_GET) or context is None or self._sent_release
                or not msg.is_valid_request or context.abstract_syntax not in (*MOVE_MODELS, *GET_MODELS)):  # fmt: skip
            return super()._serve_request(msg, context_id)  # which refuses, ignores or serves it
        # As pynetdicom's _serve_request around a service: C-CANCELs count from the request on,
        # and the association's reactor stays out of the way of send_c_store's answers.
        self.dimse.cancel_req = {}
        self._is_paused = True
        try:
            self.retrieve_service()(self).SCP(msg, context)  # type: ignore[arg-type]  # a C-MOVE or a C-GET, checked above
        except Exception:
            log.exception("%s failed", msg.msg_type)
            self.abort()
        finally:
            self._is_paused = False
            self.dimse.cancel_req = {}

    def retrieve_service(self) -> "type[RetrieveService]":
        """The service class that serves C-MOVE and C-GET here (the fast path's derives from it)."""
        return RetrieveService


class RetrieveACSE(ACSE):
    """pynetdicom's ACSE, choosing the transfer syntax of a storage context in which we send
    (the requestor proposed the SCP role: a C-GET's, PS3.4 C.4.3) so that every object can go.

    pynetdicom takes the first of our syntaxes the requestor proposes, compressed ones first (to
    store what modalities send as they send it). A C-GET requestor proposing JPEG Lossless first
    and the uncompressed syntaxes after in one context (dcmtk's getscu +xs) then had JPEG
    Lossless accepted, and objects stored otherwise could not go at all: we cannot write JPEG
    Lossless. PS3.8 9.3.3.2 leaves the choice to the acceptor: here the first syntax the
    requestor proposes (its preference) that we can write any object in (transcode.py:
    uncompressed, or a lossless compression we can encode); pynetdicom's choice if there is
    none. Objects stored in it go as stored; others are decompressed (or losslessly
    compressed) into it."""

    def send_accept(self) -> None:
        request = cast(A_ASSOCIATE, self.requestor.primitive)
        proposed = {
            context.context_id: [str(uid) for uid in context.transfer_syntax]
            for context in request.presentation_context_definition_list
        }
        for context in self.assoc._accepted_cx.values():
            if not context.as_scu:
                continue
            writable = next((uid for uid in proposed.get(context.context_id, []) if uid in WRITABLE), None)
            if writable is not None:
                context.transfer_syntax = [UID(writable)]
        super().send_accept()


def association_adopt(assoc: Association) -> None:
    """Make an association pynetdicom's server has just made (before its threads start) a
    RetrieveAssociation (see the module's docstring), with a RetrieveACSE: they add overrides
    and no state."""
    if not isinstance(assoc, RetrieveAssociation):
        assoc.__class__ = RetrieveAssociation
    if not isinstance(assoc.acse, RetrieveACSE):
        assoc.acse.__class__ = RetrieveACSE


def move_contexts(instances: list[RetrievedInstance]) -> list[PresentationContext]:
    """The presentation contexts to propose to a move destination for ``instances``: for each
    SOP class, one context per stored transfer syntax that is compressed (so a peer that accepts
    it gets the object as stored) and one with the uncompressed syntaxes (for everything else,
    decompressed if need be). Beyond 128, only the uncompressed ones: objects are decompressed."""
    classes = list(dict.fromkeys(instance.sop_class_uid for instance in instances))
    contexts = [build_context(sop_class, UNCOMPRESSED) for sop_class in classes]
    pairs = dict.fromkeys(
        (instance.sop_class_uid, instance.transfer_syntax_uid)
        for instance in instances
        if instance.transfer_syntax_uid not in UNCOMPRESSED
    )
    for sop_class, syntax in pairs:
        if len(contexts) >= MOST_CONTEXTS:
            break
        contexts.append(build_context(sop_class, [syntax]))
    return contexts[:MOST_CONTEXTS]


def _is_status(value: object) -> bool:
    return isinstance(value, Dataset) and "Status" in value


def _status_fields(status: Dataset | int) -> tuple[int, str | None]:
    if isinstance(status, Dataset):
        return int(status.Status), status.get("ErrorComment")
    return int(status), None


def store_outcome(status: Dataset) -> str:
    """A C-STORE sub-operation's outcome from its response status (PS3.4 B.2.3, PS3.7 C): an
    empty status (no response: timed out, aborted) is a failure."""
    code = status.get("Status")
    if code == SUCCESS:
        return "completed"
    if code is not None and (code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF):
        return "warning"
    return "failed"


class StoreSender(Protocol):
    """What sends the C-STORE sub-operations: a pynetdicom Association (the C-MOVE destination's,
    or the C-GET requestor's own), or the fast path's senders (fast/store_scu.py)."""

    @property
    def is_established(self) -> bool: ...

    @property
    def accepted_contexts(self) -> list[PresentationContext]: ...

    def send_c_store(
        self, dataset: Any, msg_id: int = 1, priority: int = 2,
        originator_aet: str | None = None, originator_id: int | None = None,
    ) -> Dataset: ...  # fmt: skip

    def release(self) -> None: ...


class RetrieveService(QueryRetrieveServiceClass):
    """One C-MOVE or C-GET request, served (see the module's docstring). Three methods are
    where the fast path (fast/store_scu.py) sends the short way: destination_associate,
    requestor_sender and _respond."""

    def SCP(self, req: C_MOVE | C_GET, context: PresentationContext) -> None:  # type: ignore[override]  # pynetdicom's takes C-FIND too
        rsp = C_MOVE() if isinstance(req, C_MOVE) else C_GET()
        rsp.MessageIDBeingRespondedTo = req.MessageID
        rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
        self.req, self.rsp, self.context = req, rsp, context
        self.items: Items | None = None  # the handler's generator, until it is closed
        event = evt.EVT_C_MOVE if isinstance(req, C_MOVE) else evt.EVT_C_GET
        try:
            items = cast(Items, evt.trigger(self.assoc, event, {
                "request": req, "context": context.as_tuple, "_is_cancelled": self.is_cancelled,
            }))  # fmt: skip
        except Exception:
            log.exception("%s handler failed", req.msg_type)
            self._respond(UNABLE_TO_PROCESS, comment=HANDLER_FAILED)
            return
        self.items = items
        try:
            self._serve(items)
        finally:
            self._handler_close()

    def _handler_close(self) -> None:
        """End the handler's generator: its own cleanup (the audit) runs now, on this thread,
        before the final answer goes out."""
        if self.items is not None:
            self.items.close()
            self.items = None

    def _serve(self, items: Items) -> None:
        try:
            first = next(items)
            if isinstance(self.req, C_MOVE) and not _is_status(first):
                destination, first = first, next(items)
            else:
                destination = None
            count = first if _is_status(first) else int(first)
        except Exception:
            log.exception("%s handler failed", self.req.msg_type)
            self._respond(UNABLE_TO_PROCESS, comment=HANDLER_FAILED)
            return
        if isinstance(count, Dataset):  # refused before anything is sent
            code, comment = _status_fields(count)
            self._respond(code, comment=comment)
            return
        if count == 0:
            self._respond(SUCCESS, counts=(None, 0, 0, 0))
            return
        if destination is None:  # C-GET: to the requestor, on its own association (PS3.4 C.4.3)
            self._suboperations(items, count, self.requestor_sender())
            return
        host, port, *more = destination
        kwargs = dict(more[0]) if more else {}
        kwargs.setdefault("ae_title", self.req.MoveDestination)  # type: ignore[union-attr]  # a C-MOVE's
        store = self.destination_associate(host, port, kwargs)
        tls_failure = handshake_failure(kwargs["tls_args"][0]) if kwargs.get("tls_args") else None
        if not store.is_established and tls_failure:  # reached, but TLS failed: say why (tls.py)
            log.warning("C-MOVE: TLS with the move destination %s at %s:%s: %s",
                        kwargs["ae_title"], host, port, tls_failure)  # fmt: skip
            # PS3.4 C.4.2.1.5 A702 (Unable to perform sub-operations): the destination is known and
            # listening, but no sub-operation could be made; all of them count as failed.
            self._respond(SUB_OPERATIONS_FAILED, comment=f"TLS to {kwargs['ae_title']} failed: {tls_failure}",
                          counts=(None, 0, count, 0), failed_uids=self._none_sent(items))  # fmt: skip
            return
        if not store.is_established:
            log.warning("C-MOVE: the move destination %s at %s:%s did not accept an association",
                        kwargs["ae_title"], host, port)  # fmt: skip
            # PS3.4 C.4.2.1.4: 0xA801 also when the destination cannot be reached.
            self._respond(
                MOVE_DESTINATION_UNKNOWN,
                comment=f"Move destination {kwargs['ae_title']} refused or unreachable",
            )
            return
        try:
            self._suboperations(items, count, store)
        finally:
            if store.is_established:
                store.release()

    def _none_sent(self, items: Items) -> list[str]:
        """Every object the handler names, each answered "failed" (its audit counts them so): the
        Failed SOP Instance UID List of a retrieve that could send nothing (C.4.2.1.4.2)."""
        failed_uids: list[str] = []
        outcome: str | None = None
        while True:
            try:
                _status, item = items.send(outcome)
            except Exception:  # StopIteration: all named; or the handler failed
                return failed_uids
            if not isinstance(item, RetrievedInstance):
                return failed_uids
            failed_uids.append(item.sop_instance_uid)
            outcome = "failed"

    def destination_associate(self, host: str, port: int, kwargs: dict[str, Any]) -> StoreSender:
        """The association to the move destination (kwargs for AE.associate: ae_title, contexts; tls_args
        for a node registered with TLS, handlers_retrieve.on_move)."""
        return self.ae.associate(host, port, **kwargs)

    def requestor_sender(self) -> StoreSender:
        """What sends a C-GET's objects: the requestor's own association (PS3.4 C.4.3)."""
        return self.assoc

    def _suboperations(self, items: Items, count: int, sender: StoreSender) -> None:
        """Send each object the handler yields and answer Pending with the counts after each
        (PS3.4 C.4.2.1.4 / C.4.3.1.3: remaining, completed, failed, warning); the final answer
        lists the objects that failed (Failed SOP Instance UID List)."""
        remaining, completed, failed, warning = count, 0, 0, 0
        failed_uids: list[str] = []
        outcome: str | None = None
        message_id = 0
        self._accepted: dict[str, list[str]] = {}  # the syntaxes ``sender`` accepted, by SOP class
        while True:
            try:
                status, item = items.send(outcome)
            except StopIteration:
                break
            except Exception:
                log.exception("%s handler failed", self.req.msg_type)
                status, item = Dataset(), None
                status.Status, status.ErrorComment = (
                    UNABLE_TO_PROCESS,
                    HANDLER_FAILED,
                )
            code, comment = _status_fields(status)
            if code == PENDING and not isinstance(item, RetrievedInstance):
                log.error("%s handler yielded Pending without an instance: %r", self.req.msg_type, item)
                code, comment = UNABLE_TO_PROCESS, HANDLER_FAILED
            if code != PENDING:
                if code == CANCELLED:  # PS3.4 C.4.2.3.1: with what remains not sent
                    self._respond(
                        code, counts=(remaining, completed, failed, warning), failed_uids=failed_uids
                    )
                else:  # failed on the way: what was not sent counts as failed
                    self._respond(code, comment=comment, failed_uids=failed_uids,
                                  counts=(None, completed, failed + remaining, warning))  # fmt: skip
                return
            if remaining <= 0:
                log.error("%s handler yielded more instances than it counted", self.req.msg_type)
                break
            message_id = message_id % 65535 + 1
            outcome = self._store(sender, item, message_id)
            remaining -= 1
            if outcome == "completed":
                completed += 1
            elif outcome == "warning":
                warning += 1
            else:
                failed += 1
                failed_uids.append(item.sop_instance_uid)
            if not self.assoc.is_established:
                return
            self._respond(PENDING, counts=(remaining, completed, failed, warning))
        if not failed and not warning:
            self._respond(SUCCESS, counts=(None, completed, failed, warning))
        elif failed == count:
            self._respond(SUB_OPERATIONS_FAILED, comment="No object could be sent: see the listener's log",
                          counts=(None, completed, failed, warning), failed_uids=failed_uids)  # fmt: skip
        else:
            self._respond(
                SUB_OPERATIONS_WARNING, counts=(None, completed, failed, warning), failed_uids=failed_uids
            )

    def _store(self, sender: StoreSender, item: RetrievedInstance, message_id: int) -> str:
        """One C-STORE sub-operation: the object as the peer may take it, sent as it is read."""
        if not sender.is_established:
            return "failed"
        accepted = self._accepted.get(item.sop_class_uid)
        if accepted is None:  # once a SOP class: pynetdicom sorts its contexts at every look
            self._accepted[item.sop_class_uid] = accepted = [
                str(cx.transfer_syntax[0])
                for cx in sender.accepted_contexts
                if cx.abstract_syntax == item.sop_class_uid and cx.as_scu
            ]
        # PS3.7 9.1.1.1: a C-MOVE's sub-operations say who asked for the move, and which request.
        moving = isinstance(self.req, C_MOVE)
        originator_aet = self.assoc.requestor.ae_title if moving else None
        originator_id = self.req.MessageID if moving else None
        try:
            with instance_sendable(item, accepted) as path:
                status = sender.send_c_store(  # from the file as it is read (STORE_SEND_CHUNKED_DATASET)
                    path, msg_id=message_id, originator_aet=originator_aet, originator_id=originator_id
                )
        except InstanceUnavailable as error:
            log.warning("%s: %s not sent: %s", self.req.msg_type, item.sop_instance_uid, error)
            return "failed"
        except Exception:  # the peer went away, or pynetdicom could not encode it
            log.exception("%s: %s not sent", self.req.msg_type, item.sop_instance_uid)
            return "failed"
        outcome = store_outcome(status)
        if outcome != "completed":
            log.warning("%s: %s: the peer answered 0x%04X", self.req.msg_type, item.sop_instance_uid,
                        int(status.get("Status", 0xFFFF)))  # fmt: skip
        return outcome

    def _respond(
        self,
        code: int,
        *,
        comment: str | None = None,
        counts: tuple[int | None, int, int, int] | None = None,
        failed_uids: list[str] | None = None,
    ) -> None:
        """A C-MOVE or C-GET response: Pending, or the final one (PS3.4 C.4.2.1.4, C.4.3.1.3)."""
        if code != PENDING:
            self._handler_close()
        if not self.assoc.is_established:
            return
        rsp = self.rsp
        rsp.Status = code
        rsp.ErrorComment = error_comment(comment) if comment else None  # type: ignore[assignment]  # pynetdicom types it str | None
        rsp.Identifier = None
        remaining, completed, failed, warning = counts or (None, None, None, None)
        rsp.NumberOfRemainingSuboperations = remaining
        rsp.NumberOfCompletedSuboperations = completed
        rsp.NumberOfFailedSuboperations = failed
        rsp.NumberOfWarningSuboperations = warning
        if failed_uids is not None and code not in (SUCCESS, PENDING):
            # Failed SOP Instance UID List (0008,0058): in a final answer other than Success.
            identifier = Dataset()
            identifier.FailedSOPInstanceUIDList = failed_uids
            syntax = UID(self.context.transfer_syntax[0])
            encoded = encode(identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
            rsp.Identifier = BytesIO(cast(bytes, encoded))
        assert self.context.context_id is not None  # a negotiated context's
        self.dimse.send_msg(rsp, self.context.context_id)
