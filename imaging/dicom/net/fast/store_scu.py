"""C-MOVE's and C-GET's C-STORE sub-operations sent the short way (the listener's speed work on
retrieve_scp.RetrieveService; reactor.EventDrivenAssociation serves C-MOVE and C-GET with
FastRetrieveService).

With pynetdicom each object cost two or three thread hand-offs and a pydicom encoding of every
command set twice (for its group length): its C-STORE-RQ went through a queue to the DUL thread
to be written, the answer came back through another, and its DUL polls its socket every
millisecond; the C-MOVE and C-GET pending responses were encoded the same way. Here, on the
association's own thread:

- C-MOVE: the association to the move destination is our own requestor (StoreAssociation,
  PS3.8 9.3.2-9.3.7 with pynetdicom's PDU classes for the A-ASSOCIATE-RQ/-AC), on a socket with
  Nagle's algorithm off, that writes each C-STORE-RQ and reads its C-STORE-RSP itself.
- C-GET: the C-STORE-RQ is written straight to the requestor's socket, whose DUL thread still
  reads everything the peer sends (so a C-CANCEL is heard as before) and hands the C-STORE-RSP
  over read the short way (RequestorStoreSender, FastDIMSE.store_answers). Over TLS, where two threads may not use one
  connection, pynetdicom sends them.
- The data set goes from the stored file as it is read, a PDU at a time (PS3.8 9.3.5; P-DATA-TF
  fragments of at most the peer's Maximum Length Received, PS3.8 D.1), never re-encoded.
- Pending C-MOVE-RSP and C-GET-RSP command sets are written directly (wire.py).

While a C-MOVE or C-GET is served its association's thread is the only one that writes to that
association's socket: the DUL thread writes only what is queued for it, and nothing is queued
while the service runs (the peer waits for the final response before its next request: no
asynchronous operations window is negotiated, PS3.7 D.3.3.3).
"""

import logging
import os
import queue
import select
import socket
import struct
import time
from copy import deepcopy
from typing import TYPE_CHECKING, Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.dsutils import split_dataset
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext, negotiate_as_requestor
from pynetdicom.transport import AddressInformation

from imaging.dicom.net.fast.dimse import FastDIMSE
from imaging.dicom.net.fast.wire import (
    C_GET_RSP,
    C_MOVE_RSP,
    command_read,
    p_data_header,
    retrieve_response_command,
    store_request_command,
)
from imaging.dicom.net.retrieve_scp import RetrieveService, StoreSender
from imaging.dicom.records.status import PENDING, SUCCESS

if TYPE_CHECKING:  # reactor.py imports this module
    from imaging.dicom.net.fast.reactor import EventDrivenDUL, FastSocket

log = logging.getLogger("imaging.dicom")

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"  # PS3.7 A.2.1
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # A-RELEASE-RQ (PS3.8 9.3.6)
ABORT_RQ = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # A-ABORT, service-user, no reason (9.3.8)
# The data set in PDUs of at most this many bytes when the peer sets no limit (Maximum Length
# Received 0, PS3.8 D.1): one object is never read whole.
UNLIMITED_PDU = 1 << 20
# The longest PDU we read other than a P-DATA-TF: an A-ASSOCIATE-AC is small.
PDU_LIMIT = 1 << 20
# How often a C-GET's sub-operation waiting for its answer looks whether the association ended.
ANSWER_WAIT = 0.5
# Elements of the file meta information read from a stored file (PS3.10 7.1).
MEDIA_SOP_CLASS, MEDIA_SOP_INSTANCE, TRANSFER_SYNTAX = 0x0002, 0x0003, 0x0010
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class StoreAbandoned(Exception):
    """The association cannot go on: the peer aborted or closed it, or answered nonsense."""


class StoredFile:
    """A stored Part 10 file: its SOP Class and Instance UIDs and transfer syntax from its file
    meta information, and where its data set starts (PS3.10 7.1). Read from the first bytes;
    pynetdicom's reader (split_dataset) for a file without File Meta Information Group Length."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as file:
            head = file.read(144)
            if len(head) == 144 and head[128:132] == b"DICM" and head[132:138] == b"\x02\x00\x00\x00UL":
                (group_length,) = struct.unpack_from("<L", head, 140)
                meta = self._meta_read(file.read(group_length))
                self.offset = 144 + group_length
            else:
                file_meta, self.offset = split_dataset(os.fspath(path))  # type: ignore[arg-type]  # it opens any path
                meta = {
                    MEDIA_SOP_CLASS: str(file_meta.get("MediaStorageSOPClassUID", "")),
                    MEDIA_SOP_INSTANCE: str(file_meta.get("MediaStorageSOPInstanceUID", "")),
                    TRANSFER_SYNTAX: str(file_meta.get("TransferSyntaxUID", "")),
                }
            self.size = os.fstat(file.fileno()).st_size - self.offset
        self.sop_class_uid = meta.get(MEDIA_SOP_CLASS, "")
        self.sop_instance_uid = meta.get(MEDIA_SOP_INSTANCE, "")
        self.transfer_syntax = meta.get(TRANSFER_SYNTAX, "")
        if not (self.sop_class_uid and self.sop_instance_uid and self.transfer_syntax):
            raise ValueError(f"{path}: its file meta information names no SOP class, instance or syntax")

    @staticmethod
    def _meta_read(meta: bytes) -> dict[int, str]:
        """The UIDs we need from file meta elements (Explicit VR Little Endian, PS3.10 7.1)."""
        found: dict[int, str] = {}
        at = 0
        while at + 8 <= len(meta):
            group, element = struct.unpack_from("<HH", meta, at)
            if meta[at + 4 : at + 6] in LONG_VRS:
                (length,) = struct.unpack_from("<L", meta, at + 8)
                start = at + 12
            else:
                (length,) = struct.unpack_from("<H", meta, at + 6)
                start = at + 8
            if group == 0x0002 and element in (MEDIA_SOP_CLASS, MEDIA_SOP_INSTANCE, TRANSFER_SYNTAX):
                found[element] = meta[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
            at = start + length
        return found


def context_for(contexts: list[PresentationContext], stored: StoredFile) -> PresentationContext | None:
    """The accepted context in which we may send ``stored`` as it is: its SOP class, its
    transfer syntax, and we the SCU of it (PS3.7 D.3.3.4)."""
    for context in contexts:
        if (context.abstract_syntax == stored.sop_class_uid and context.as_scu
                and context.transfer_syntax[0] == stored.transfer_syntax):  # fmt: skip
            return context
    return None


def message_write(
    sock: socket.socket, context_id: int, command: bytes, stored: StoredFile, max_pdu: int
) -> None:
    """A C-STORE-RQ: its command in one PDU, then the data set from the file as it is read, a
    P-DATA-TF PDU of one fragment at a time (PS3.7 E.2: control header bit 0 command, bit 1
    last fragment), each read into one buffer behind its header and written from it (sendfile
    cost more in Python's socket.sendfile than the copy it saves). ``max_pdu`` is the peer's
    Maximum Length Received (0: no limit). Raises OSError or StoreAbandoned; the association
    cannot go on after one of these once anything was written."""
    room = (max_pdu or UNLIMITED_PDU) - 6  # each PDV item's 6-byte header counts (PS3.8 D.1)
    if len(command) > room:
        raise StoreAbandoned(f"a {len(command)}-byte command does not fit the peer's {max_pdu}-byte PDU")
    sock.sendall(p_data_header(context_id, 0x03, len(command)) + command)
    buffer = bytearray(12 + min(room, max(stored.size, 1)))
    view = memoryview(buffer)
    left = stored.size
    with open(stored.path, "rb", buffering=0) as file:
        file.seek(stored.offset)
        while True:
            got = file.readinto(view[12 : 12 + min(room, left)]) if left else 0
            if left and not got:
                raise StoreAbandoned(f"{stored.path} ended before its data set did")
            left -= got
            struct.pack_into(">BBLLBB", buffer, 0, 0x04, 0x00, got + 6, got + 2, context_id,
                             0x02 if not left else 0x00)  # fmt: skip
            sock.sendall(view[: 12 + got])
            if not left:
                return


def store_status(command: dict[int, bytes], message_id: int) -> Dataset:
    """The status of a C-STORE-RSP command (PS3.7 9.3.1.2) answering ``message_id``, as
    Association.send_c_store gives it: Status and, if sent, Error Comment."""
    try:
        (field,), (answered,), (code,) = (
            struct.unpack("<H", command[key]) for key in (0x0100, 0x0120, 0x0900)
        )
    except (KeyError, struct.error):  # missing, or not a US (PS3.7 E.1-1)
        raise StoreAbandoned("the peer's answer is not a C-STORE-RSP") from None
    if field != 0x8001 or answered != message_id:
        raise StoreAbandoned("the peer's answer is not the C-STORE-RSP to our request")
    status = Dataset()
    status.Status = code
    if command.get(0x0902):
        status.ErrorComment = command[0x0902].rstrip(b"\0 ").decode("ascii", "replace")
    return status


class StoreAssociation:
    """An association to a C-MOVE destination that we request ourselves and serve on the
    caller's thread (see the module's docstring). It has what RetrieveService asks of a
    StoreSender: is_established, accepted_contexts, send_c_store, release."""

    def __init__(
        self, ae: Any, host: str, port: int, *, ae_title: str, contexts: list[PresentationContext]
    ) -> None:
        self.is_established = False
        self.accepted_contexts: list[PresentationContext] = []
        self.max_pdu = 0
        self.timeout = ae.dimse_timeout or 60
        self.sock: socket.socket | None = None
        try:
            self._associate(ae, host, port, ae_title, contexts)
        except (OSError, StoreAbandoned, ValueError) as error:
            log.warning("C-MOVE: cannot associate with %s at %s:%s: %s", ae_title, host, port, error)
            self.close()

    def _associate(
        self, ae: Any, host: str, port: int, ae_title: str, contexts: list[PresentationContext]
    ) -> None:
        requested = deepcopy(contexts)
        for number, context in enumerate(requested):
            context.context_id = 2 * number + 1  # PS3.8 9.3.2.2: odd numbers
        self.sock = sock = socket.create_connection((host, port), timeout=ae.acse_timeout or 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        primitive = A_ASSOCIATE()
        primitive.application_context_name = UID(APPLICATION_CONTEXT_NAME)
        primitive.calling_ae_title = ae.ae_title
        primitive.called_ae_title = ae_title
        primitive.calling_presentation_address = AddressInformation.from_tuple(sock.getsockname()[:2])
        primitive.called_presentation_address = AddressInformation.from_tuple((host, port))
        primitive.presentation_context_definition_list = requested
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = ae.maximum_pdu_size
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = ae.implementation_class_uid
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = ae.implementation_version_name
        primitive.user_information = [maximum, implementation, version]
        request = A_ASSOCIATE_RQ()
        request.from_primitive(primitive)
        sock.sendall(request.encode())
        kind, pdu = self._pdu_read()
        if kind == 0x03:
            rejection = A_ASSOCIATE_RJ()
            rejection.decode(pdu)
            raise StoreAbandoned(
                f"rejected (result {rejection.result}, reason {rejection.reason_diagnostic})"
            )
        if kind != 0x02:
            raise StoreAbandoned(f"answered the association request with a PDU of type 0x{kind:02X}")
        acceptance = A_ASSOCIATE_AC()
        acceptance.decode(pdu)
        accepted = acceptance.to_primitive()
        for item in accepted.user_information:
            if isinstance(item, MaximumLengthNotification):
                self.max_pdu = item.maximum_length_received or 0
        results = negotiate_as_requestor(requested, accepted.presentation_context_definition_results_list)
        self.accepted_contexts = [context for context in results if context.result == 0x00]
        sock.settimeout(self.timeout)
        self.is_established = True

    def _pdu_read(self) -> tuple[int, bytes]:
        """The next PDU: its type and the whole of it (header and body)."""
        assert self.sock is not None
        header = self._exactly(6)
        kind, _, length = struct.unpack(">BBL", header)
        if kind != 0x04 and length > PDU_LIMIT:
            raise StoreAbandoned(f"a PDU of type 0x{kind:02X} of {length} bytes")
        return kind, header + self._exactly(length)

    def _exactly(self, size: int) -> bytes:
        assert self.sock is not None
        buffer = bytearray(size)
        view, read = memoryview(buffer), 0
        while read < size:
            got = self.sock.recv_into(view[read:])
            if not got:
                raise StoreAbandoned("the peer closed the connection")
            read += got
        return bytes(buffer)

    def _response_read(self) -> bytes:
        """The command set of the peer's next DIMSE message (its fragments, PS3.7 E.2)."""
        command = bytearray()
        while True:
            kind, pdu = self._pdu_read()
            if kind == 0x07:
                raise StoreAbandoned("the peer aborted the association")
            if kind != 0x04:
                raise StoreAbandoned(f"a PDU of type 0x{kind:02X} in place of a C-STORE-RSP")
            at = 6
            while at < len(pdu):  # presentation data value items (PS3.8 9.3.5.1)
                (length,) = struct.unpack_from(">L", pdu, at)
                control = pdu[at + 5]
                if length < 2 or not control & 0x01:
                    raise StoreAbandoned("the peer answered with a data set where a command was due")
                command += pdu[at + 6 : at + 4 + length]
                at += 4 + length
                if control & 0x02:
                    return bytes(command)

    def send_c_store(
        self, dataset: Any, msg_id: int = 1, priority: int = 2,
        originator_aet: str | None = None, originator_id: int | None = None,
    ) -> Dataset:  # fmt: skip
        """Send the stored file at ``dataset`` (a path) and wait for its answer; an empty status
        if there was none (the association is aborted then), as Association.send_c_store."""
        if not self.is_established or self.sock is None:
            return Dataset()
        stored = StoredFile(os.fspath(dataset))
        context = context_for(self.accepted_contexts, stored)
        if context is None:
            raise ValueError(f"no accepted context for {stored.sop_class_uid} in {stored.transfer_syntax}")
        command = store_request_command(stored.sop_class_uid, stored.sop_instance_uid, msg_id,
                                        originator_aet=originator_aet, originator_id=originator_id)  # fmt: skip
        try:
            message_write(self.sock, cast(int, context.context_id), command, stored, self.max_pdu)
            return store_status(command_read(self._response_read()), msg_id)
        except (OSError, StoreAbandoned, ValueError, struct.error) as error:
            log.warning("C-MOVE: %s not sent: %s", stored.sop_instance_uid, error)
            self.abort()
            return Dataset()

    def release(self) -> None:
        """A-RELEASE-RQ, and the peer's A-RELEASE-RP (PS3.8 7.2); then the connection closes."""
        if self.is_established and self.sock is not None:
            self.is_established = False
            try:
                self.sock.sendall(RELEASE_RQ)
                while self._pdu_read()[0] not in (0x06, 0x07):
                    pass
            except (OSError, StoreAbandoned):
                pass
        self.close()

    def abort(self) -> None:
        if self.is_established and self.sock is not None:
            self.is_established = False
            try:
                self.sock.sendall(ABORT_RQ)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        self.is_established = False
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class RequestorStoreSender:
    """A C-GET's C-STORE sub-operations on the requestor's own association (see the module's
    docstring), from the association's thread: each written straight to its socket, and its
    answer read there too while the DUL thread lends the socket (EventDrivenDUL.socket_borrow).
    Anything else the peer sends meanwhile (a C-CANCEL, an A-ABORT) is pushed back for the DUL
    thread to read as usual, the socket given back, and the answer then comes from the DUL thread
    (FastDIMSE.store_answers)."""

    def __init__(self, assoc: Association, sock: socket.socket) -> None:
        self.assoc, self.sock = assoc, sock
        self.dul = cast("EventDrivenDUL", assoc.dul)  # server.py gave it that class
        self.max_pdu = assoc.requestor.maximum_length or 0  # what the requestor receives (PS3.8 D.1)
        self.contexts = assoc.accepted_contexts  # fixed once negotiated; pynetdicom sorts them at each look
        self.borrowed = False

    @property
    def is_established(self) -> bool:
        return bool(self.assoc.is_established)

    @property
    def accepted_contexts(self) -> list[PresentationContext]:
        return self.contexts

    def send_c_store(
        self, dataset: Any, msg_id: int = 1, priority: int = 2,
        originator_aet: str | None = None, originator_id: int | None = None,
    ) -> Dataset:  # fmt: skip
        stored = StoredFile(os.fspath(dataset))
        context = context_for(self.contexts, stored)
        if context is None:
            raise ValueError(f"no accepted context for {stored.sop_class_uid} in {stored.transfer_syntax}")
        command = store_request_command(stored.sop_class_uid, stored.sop_instance_uid, msg_id)
        dimse = cast(FastDIMSE, self.assoc.dimse)  # server.py gave it that class
        answers: queue.SimpleQueue[dict[int, bytes]] = queue.SimpleQueue()
        dimse.store_answers = answers
        try:
            if not self.borrowed:
                self.borrowed = self.dul.socket_borrow()
            try:
                message_write(self.sock, cast(int, context.context_id), command, stored, self.max_pdu)
            except (OSError, StoreAbandoned) as error:  # cut off mid-message: nothing can follow it
                log.warning("C-GET: %s not sent: %s", stored.sop_instance_uid, error)
                self.finish()
                self.assoc.abort()
                return Dataset()
            status = self._answer_read(msg_id) if self.borrowed else None
            return status if status is not None else self._answer(answers, msg_id, stored)
        finally:
            dimse.store_answers = None

    def _answer_read(self, msg_id: int) -> Dataset | None:
        """The C-STORE-RSP to ``msg_id`` read off the borrowed socket; None if the peer sent
        something else first (pushed back, the socket given back) or the association ended."""
        fast = cast("FastSocket", self.dul.socket)
        limit = self.assoc.acceptor.maximum_length or PDU_LIMIT  # what we receive (PS3.8 D.1)
        deadline = time.monotonic() + (self.assoc.dimse_timeout or 60)
        while True:
            if not self.assoc.is_established or time.monotonic() > deadline:
                self.finish()
                return None  # _answer tells which
            ready, _, _ = select.select([self.sock], [], [], ANSWER_WAIT)
            if not ready:
                continue
            pdu = bytes(fast.recv(6))
            if len(pdu) == 6:
                kind, _, length = struct.unpack(">BBL", pdu)
                if kind == 0x04 and length <= limit:
                    pdu += fast.recv(length)
                    command = _store_answer(pdu)
                    if command is not None:
                        try:
                            return store_status(command, msg_id)
                        except StoreAbandoned:
                            log.warning("C-GET: ignored a C-STORE-RSP to another request than %d", msg_id)
                            continue
            fast.pushed_back = pdu  # the DUL thread reads it as it arrived (and the rest of it)
            self.finish()
            return None

    def _answer(
        self, answers: "queue.SimpleQueue[dict[int, bytes]]", msg_id: int, stored: StoredFile
    ) -> Dataset:
        """The C-STORE-RSP to ``msg_id``, which the DUL thread hands over (FastDIMSE._store_answer);
        an empty status if none came within the DIMSE timeout or the association ended."""
        deadline = time.monotonic() + (self.assoc.dimse_timeout or 60)
        while self.assoc.is_established and time.monotonic() < deadline:
            try:
                command = answers.get(timeout=ANSWER_WAIT)
            except queue.Empty:
                continue
            try:
                return store_status(command, msg_id)
            except StoreAbandoned:
                log.warning("C-GET: ignored a C-STORE-RSP to another request than %d", msg_id)
        if self.assoc.is_established:
            log.error("C-GET: no answer to the C-STORE of %s in time", stored.sop_instance_uid)
            self.assoc.abort()
        return Dataset()

    def finish(self) -> None:
        """Give the socket back to the DUL thread."""
        if self.borrowed:
            self.borrowed = False
            self.dul.socket_give_back()

    def release(self) -> None:  # the requestor's association: it releases it
        self.finish()


def _store_answer(pdu: bytes) -> dict[int, bytes] | None:
    """The command elements of a P-DATA-TF PDU that holds a whole C-STORE-RSP command and
    nothing else (one presentation data value item, command, last fragment: PS3.8 9.3.5,
    PS3.7 E.2), or None."""
    if len(pdu) < 12:
        return None
    (item_length,) = struct.unpack_from(">L", pdu, 6)
    if 10 + item_length != len(pdu) or pdu[11] != 0x03:
        return None
    try:
        command = command_read(pdu[12:])
    except ValueError:
        return None
    return command if command.get(0x0100) == b"\x01\x80" else None  # Command Field: C-STORE-RSP


def plain_socket(assoc: Association) -> socket.socket | None:
    """The association's socket if it is plain TCP (not TLS, where the DUL thread's reads and
    our writes may not overlap) and pynetdicom writes PDUs only as we do (no one listens to
    the PDU-sent events)."""
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    if type(sock) is not socket.socket or not _config.STORE_SEND_CHUNKED_DATASET:
        return None
    return sock


class FastRetrieveService(RetrieveService):
    """RetrieveService with its C-STORE sub-operations and pending responses sent the short way."""

    def destination_associate(self, host: str, port: int, kwargs: dict[str, Any]) -> StoreSender:
        if set(kwargs) - {"ae_title", "contexts"}:  # something only pynetdicom's requestor does (TLS)
            return super().destination_associate(host, port, kwargs)
        return StoreAssociation(self.ae, host, port, ae_title=kwargs["ae_title"], contexts=kwargs["contexts"])

    def requestor_sender(self) -> StoreSender:
        sock = plain_socket(self.assoc)
        return super().requestor_sender() if sock is None else RequestorStoreSender(self.assoc, sock)

    def _suboperations(self, items: Any, count: int, sender: StoreSender) -> None:
        try:
            super()._suboperations(items, count, sender)
        finally:
            if isinstance(sender, RequestorStoreSender):
                sender.finish()  # the socket back to the DUL thread

    def _respond(
        self,
        code: int,
        *,
        comment: str | None = None,
        counts: tuple[int | None, int, int, int] | None = None,
        failed_uids: list[str] | None = None,
    ) -> None:
        """A pending or successful response without an Error Comment or identifier is written
        here (wire.retrieve_response_command); anything else pynetdicom's way (RetrieveService)."""
        sock = plain_socket(self.assoc)
        if code not in (PENDING, SUCCESS) or comment or counts is None or sock is None:
            return super()._respond(code, comment=comment, counts=counts, failed_uids=failed_uids)
        if code != PENDING:
            self._handler_close()
        if not self.assoc.is_established:
            return
        field = C_MOVE_RSP if isinstance(self.req, C_MOVE) else C_GET_RSP
        command = retrieve_response_command(
            field, self.req.AffectedSOPClassUID, cast(int, self.req.MessageID), code, counts
        )  # fmt: skip
        try:
            sock.sendall(p_data_header(cast(int, self.context.context_id), 0x03, len(command)) + command)
        except OSError as error:
            log.warning("%s: cannot answer: %s", self.req.msg_type, error)
