"""The DIMSE provider of an association: a C-STORE served on the thread that read it and
written to storage as it arrives, and its plain success answer encoded directly (the
listener's speed work on pynetdicom's DIMSE layer).

How the handler gets an object written as it arrived, through pynetdicom's public interface: the
request primitive's ``_dataset_path`` (what ``event.dataset_path`` returns, a file's path when
pynetdicom writes the data set to a file itself, STORE_RECV_CHUNKED_DATASET) is set to the
ingest service's IncomingObject, which instance_receive takes as a source like a path or bytes.
The handler passes ``event.dataset_path`` on without looking at it (handlers.on_store)."""

import logging
import queue
from io import BytesIO
from typing import cast

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE, DimsePrimitiveType
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import (
    uid_to_service_class,
)

from imaging.dicom.net.fast.wire import (
    command_read,
    message_send,
    store_refusal_command,
    store_response_command,
)
from imaging.dicom.records.integrity import is_uid
from imaging.dicom.records.status import CANNOT_UNDERSTAND
from imaging.ingest.receive import IncomingObject

LOGGER = logging.getLogger("pynetdicom.association")  # where pynetdicom logs the reactor's lines


class FastDIMSE(DIMSEServiceProvider):
    """Serves a C-STORE request where it is decoded, and encodes a plain C-STORE success
    response itself. pynetdicom builds a pydicom data set
    for every response and encodes it twice (the second time for its group length): that was
    a fifth of the listener's CPU per image. Anything else goes pynetdicom's way. (These skip
    EVT_DIMSE_SENT, which nothing of ours listens to: pynetdicom's own handler logs nothing for
    a C-STORE-RSP.)"""

    def receive_primitive(self, primitive: P_DATA) -> None:
        """pynetdicom's, except that a C-STORE request is served here, on the DUL thread, once
        its last fragment is in. Queued for the association thread, with its answer queued
        back, an image cost two thread wake-ups: on a busy machine each waits for a core, and
        over one association they were most of an image's time. The handler only checks,
        writes and queues (handlers.on_store). A peer has one operation outstanding at a time
        (we negotiate no asynchronous operations window, PS3.7 D.3.3.3), so the association thread
        serves nothing meanwhile; anything unusual goes pynetdicom's way."""
        if self.store_answers is not None and self.message is None and self._store_answer(primitive):
            return None
        if type(self.message) is not C_STORE_RQ:  # its command set has not been decoded yet
            fragments = primitive.presentation_data_value_list
            if len(fragments) > 1:
                # A command and its data set in one PDU (PS3.8 9.3.5 allows it): one fragment at
                # a time, so that a C-STORE's data set comes here once its command is decoded.
                for fragment in fragments:
                    single = P_DATA()
                    single.presentation_data_value_list = []  # its setter wants bytes
                    single.presentation_data_value_list.append(fragment)
                    self.receive_primitive(single)
                return None
            return super().receive_primitive(primitive)
        message = self.message
        if not message.decode_msg(primitive, self.assoc):
            self._store_stream(message)
            return  # more data set fragments to come
        if self.incoming is not None and self.incoming[0] is message:
            self._store_stream(message)  # its last fragment
        self.message = None
        evt.trigger(self.assoc, evt.EVT_DIMSE_RECV, {"message": message})
        try:
            request = cast(C_STORE, message.message_to_primitive())  # a C-STORE-RQ's
            problem = None if request.is_valid_request else "a required element is missing"
        except Exception as exc:  # pynetdicom refuses a value: a UID of 200 characters
            problem = str(exc)
        if problem is not None:
            self.incoming_abort()
            if not self._store_refuse(message, problem):
                LOGGER.error(f"Received an invalid C-STORE request: {problem}")
                self.dul.event_queue.put("Evt19")  # as pynetdicom: the association ends
            return
        self._incoming_hand(message, request)
        assert message.context_id is not None  # decode_msg read it with the first fragment
        if not self._store_serve(request, message.context_id):
            self.msg_queue.put((message.context_id, request))

    # While a C-GET's C-STORE sub-operation waits for its answer (store_scu.RequestorStoreSender):
    # where a C-STORE-RSP goes, as its command elements (wire.command_read).
    store_answers: "queue.SimpleQueue[dict[int, bytes]] | None" = None

    def _store_answer(self, primitive: P_DATA) -> bool:
        """Hand a C-STORE-RSP that came whole in one fragment to the sub-operation waiting for it,
        read the short way: pynetdicom decodes it with pydicom, logs it and queues it for the
        association's thread, a third of a C-GET's CPU per object. False for anything else."""
        fragments = primitive.presentation_data_value_list
        if len(fragments) != 1 or fragments[0][1][:1] != b"\x03":  # one command, its last fragment
            return False
        try:
            command = command_read(fragments[0][1][1:])
        except ValueError:
            return False
        if command.get(0x0100) != b"\x01\x80" or self.store_answers is None:  # Command Field: C-STORE-RSP
            return False
        self.store_answers.put(command)
        return True

    def _store_refuse(self, message: C_STORE_RQ, problem: str) -> bool:
        """Answer a C-STORE request whose command set is not a valid one with 0xC000 and why
        (PS3.4 B.2.3), where pynetdicom aborts the association (or, for a missing element, never
        answers). Its data set has been read whole, so the association can go on. False if the
        command has no Message ID to answer to (PS3.7 9.3.1.2): only an abort is left then."""
        command = message.command_set
        try:
            message_id = int(command.MessageID)
        except Exception:
            return False
        uids: dict[str, str] = {}
        for keyword, name in (("AffectedSOPClassUID", "Affected SOP Class UID"),
                              ("AffectedSOPInstanceUID", "Affected SOP Instance UID")):  # fmt: skip
            try:
                uids[keyword] = value = str(command[keyword].value).rstrip("\0 ")
            except Exception:
                problem = f"{name} missing or unreadable"
                continue
            if not is_uid(value):
                problem = f"{name} is not a valid UID"
        LOGGER.warning(f"C-STORE request {message_id} refused: {problem}")
        assert message.context_id is not None  # decode_msg read it with the first fragment
        refusal = store_refusal_command(
            message_id, CANNOT_UNDERSTAND, f"Invalid request: {problem}",
            sop_class_uid=uids.get("AffectedSOPClassUID"),
            sop_instance_uid=uids.get("AffectedSOPInstanceUID"),
        )  # fmt: skip
        message_send(self, message.context_id, refusal)
        return True

    # (message, IncomingObject): the C-STORE data set being written as it comes
    incoming: tuple[C_STORE_RQ, IncomingObject] | None = None

    def _store_stream(self, message: C_STORE_RQ) -> None:
        """Write what has arrived of a C-STORE request's data set to storage now (IncomingObject),
        not once the last fragment is in: an 8 MB image then costs the time of its transfer
        plus a short fsync, instead of its transfer plus all of its writing. The data set is
        still assembled in memory too, for the handler to check before anything is committed.
        A data set that arrives whole in its first PDU (most CT and MR slices) is stored whole
        by the handler: a part file and a rename would only cost it time."""
        if self.incoming is None or self.incoming[0] is not message:
            self.incoming_abort()  # one operation at a time: an earlier one never finished
            command, assoc = message.command_set, self.assoc
            context = assoc._accepted_cx.get(message.context_id)  # type: ignore[arg-type]  # None: not found
            if context is None or not IncomingObject.fits(command.get("AffectedSOPInstanceUID")):
                return  # the handler refuses it, or stores it whole
            self.incoming = (message, IncomingObject(
                sop_class_uid=command.AffectedSOPClassUID, sop_instance_uid=command.AffectedSOPInstanceUID,
                transfer_syntax=context.transfer_syntax[0], calling_ae=assoc.requestor.ae_title.strip(),
            ))  # fmt: skip
        incoming = self.incoming[1]
        buffer = cast(BytesIO, message.data_set)  # a C-STORE-RQ's (pynetdicom casts it so too)
        end = buffer.tell()
        if end > incoming.size:
            with buffer.getbuffer() as view:
                incoming.write(view[incoming.size : end])

    def _incoming_hand(self, message: C_STORE_RQ, request: C_STORE) -> None:
        """Give the IncomingObject written for ``message``, now complete, to the handler as
        ``event.dataset_path`` (see the module's docstring), where it is committed or thrown
        away. A data set that came whole in its first PDU was not written as it came: the
        handler stores it from ``event.request.DataSet``."""
        if self.incoming is None or self.incoming[0] is not message:
            return
        _message, incoming = self.incoming
        self.incoming = None
        incoming.arrived(cast(BytesIO, request.DataSet).getvalue())  # decode_msg assembled it
        # A source like a path (the module's docstring): pynetdicom's annotation knows paths only.
        request._dataset_path = incoming  # type: ignore[assignment]

    def incoming_abort(self) -> None:
        """Throw away a data set that never completed (the association ended, or was aborted)."""
        if self.incoming is not None:
            _message, incoming = self.incoming
            self.incoming = None
            incoming.abort()

    def _store_serve(self, request: C_STORE, context_id: int) -> bool:
        """Serve a C-STORE request on this thread; False if it should be queued instead."""
        assoc = self.assoc
        context = assoc._accepted_cx.get(context_id)
        if (context is None or not request.is_valid_request or assoc._sent_release or not assoc.is_established
                or not self.msg_queue.empty() or request.AffectedSOPClassUID in assoc.acceptor.accepted_common_extended
                or uid_to_service_class(str(request.AffectedSOPClassUID)) is not StorageServiceClass):  # fmt: skip
            return False
        StorageServiceClass(assoc).SCP(request, context)
        return True

    def send_msg(self, primitive: DimsePrimitiveType, context_id: int) -> None:
        if type(primitive) is not C_STORE or not _plain_success(primitive):
            return super().send_msg(primitive, context_id)
        command = store_response_command(primitive)
        if self.maximum_pdu_size and len(command) + 6 > self.maximum_pdu_size:
            return super().send_msg(primitive, context_id)
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + command))  # command, last fragment
        self.dul.send_pdu(pdata)


def _plain_success(primitive: C_STORE) -> bool:
    return bool(
        primitive.MessageIDBeingRespondedTo is not None and primitive.Status == 0x0000
        and primitive.ErrorComment is None and primitive.OffendingElement is None
        and primitive.AffectedSOPClassUID and primitive.AffectedSOPInstanceUID
    )  # fmt: skip
