"""The association's threads, event-driven: they sleep until the socket or a queue has
something, where pynetdicom polls, and read PDUs in large pieces (the listener's speed work on
pynetdicom's DUL and Association; server.py gives each accepted association these classes)."""

import logging
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pynetdicom import evt
from pynetdicom._handlers import standard_pdu_recv_handler
from pynetdicom.dimse_primitives import C_FIND, DimseServiceType
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import (sop_class.py)
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.transport import AssociationSocket

from imaging.dicom.net.fast.dimse import FastDIMSE
from imaging.dicom.net.fast.store_scu import FastRetrieveService
from imaging.dicom.net.fast.wire import DecodedPData, p_data_decode
from imaging.dicom.net.fast.worklist_scp import QueryFind, WorklistFind
from imaging.dicom.net.handlers import association_finish, thread_ended
from imaging.dicom.net.retrieve_scp import RetrieveAssociation, RetrieveService

if TYPE_CHECKING:
    from pynetdicom.pdu import _PDUType

    from imaging.dicom.net.ae import Server

LOGGER = logging.getLogger("pynetdicom.association")  # where pynetdicom logs the reactor's lines
# The C-FIND SOP classes answered the short way (worklist_scp.py), by abstract syntax.
SHORT_FIND: dict[str, type[WorklistFind] | type[QueryFind]] = {
    str(ModalityWorklistInformationFind): WorklistFind,
    str(PatientRootQueryRetrieveInformationModelFind): QueryFind,
    str(StudyRootQueryRetrieveInformationModelFind): QueryFind,
}

QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


# How long a reactor thread waits when nothing wakes it, before it checks its timers (ARTIM,
# idle timeout) and whether its partner thread is still alive.
IDLE_WAIT = 0.02


# The longest PDU we read other than a P-DATA-TF (bounded by our Maximum Length Received, PS3.8
# D.1). An A-ASSOCIATE-RQ comes before any maximum is negotiated; 128 presentation contexts of
# 30 transfer syntaxes and a 64 KiB user identity come to about 300 KiB, so 1 MiB refuses no
# real one. The others have 4-byte bodies (PS3.8 9.3.4, 9.3.6-9.3.8).
PDU_LIMIT = 2**20


# How long socket_borrow waits for the DUL thread to stop reading before it does without.
BORROW_WAIT = 2.0


# FastSocket.recv allocates at most this much ahead of the bytes that have arrived.
RECV_AHEAD = 2**20


class FastSocket(AssociationSocket):
    """Reads large PDUs in large pieces, and ACKs at once.

    pynetdicom reads 4 KiB at a time, which caps large-image throughput. And a sender that
    leaves Nagle's algorithm on waits for our ACK before sending the rest of each small
    message; Linux delays that ACK up to 40 ms unless TCP_QUICKACK is set again after reads
    (it is not sticky). See VETERINARY-DICOM-HL7.md, "Network detail that matters for speed".
    """

    # A PDU read by a thread that borrowed the socket (EventDrivenDUL.socket_borrow) and gave
    # back for the DUL to read as if it had just arrived.
    pushed_back = b""

    @property
    def ready(self) -> bool:
        return bool(self.pushed_back) or super().ready

    def recv(self, nr_bytes: int) -> bytearray:
        """``nr_bytes`` (fewer if the connection closes), in a buffer that grows with what
        arrives rather than with what was announced (EventDrivenDUL bounds ``nr_bytes`` too);
        what was pushed back first."""
        if self.pushed_back:
            taken, self.pushed_back = self.pushed_back[:nr_bytes], self.pushed_back[nr_bytes:]
            if len(taken) == nr_bytes:
                return bytearray(taken)
            return bytearray(taken) + self.recv(nr_bytes - len(taken))
        buffer = bytearray(min(nr_bytes, RECV_AHEAD))
        read = 0
        while read < nr_bytes:
            if read == len(buffer):
                buffer += bytes(min(nr_bytes - read, read))  # doubled, at most to nr_bytes
            with memoryview(buffer)[read:] as view:  # released before the buffer may grow
                got = self.socket.recv_into(view)  # type: ignore[union-attr]  # connected before the DUL runs
            if QUICKACK is not None:
                self.socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)  # type: ignore[union-attr]  # connected before the DUL runs
            if not got:
                return buffer[:read]
            read += got
        return buffer


class WakingQueue(queue.Queue[Any]):
    """A queue that calls ``wake`` after each put, so that its reader can sleep until then."""

    def __init__(self, wake: Callable[[], object]) -> None:
        super().__init__()
        self.wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self.wake()


class EventDrivenDUL(DULServiceProvider):
    """The DUL thread sleeps in select() on the socket and a wake-up socket, instead of
    polling both every 0.1 ms: four polling associations kept a core busy doing nothing.
    Anything put on ``to_provider_queue`` (our answers), and a stop, wakes it at once."""

    def prepare(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_lock = threading.Lock()
        self._run_loop_delay = 0  # the wait is in _is_transport_event
        self._pdu_refused = False  # a PDU longer than allowed was announced (_read_pdu_data)
        self.to_provider_queue = WakingQueue(self.wake)
        # socket_borrow: wanted by the association's thread, granted by this one between PDUs.
        self._lend_wanted = False
        self._lent = threading.Event()
        self._given_back = threading.Event()

    def socket_borrow(self) -> bool:
        """Stop this thread reading the socket, between two PDUs, so that the caller may read
        it (store_scu.RequestorStoreSender reads a C-GET's C-STORE-RSPs itself: a thread
        hand-off less an object). True once lent; False if this thread has stopped. The caller
        gives it back with socket_give_back, having pushed back (FastSocket.pushed_back)
        anything it read and will not handle."""
        self._lent.clear()
        self._given_back.clear()
        self._lend_wanted = True
        self.wake()
        deadline = time.monotonic() + BORROW_WAIT
        while not self._lent.wait(IDLE_WAIT):
            # Stopped, or not lending (it lends in Sta6 only, PS3.8 9.2: data transfer).
            if self._kill_thread or not self.is_alive() or time.monotonic() > deadline:
                self.socket_give_back()  # if it parks now after all, it goes on at once
                return False
        return True

    def socket_give_back(self) -> None:
        self._lend_wanted = False
        self._lent.clear()
        self._given_back.set()

    def _socket_lend(self) -> None:
        """Wait here, reading nothing, while the socket is lent (socket_borrow)."""
        self._lent.set()
        while not self._given_back.wait(IDLE_WAIT):
            if self._kill_thread:
                return

    def wake(self) -> None:
        if threading.current_thread() is self:  # awake: it looks at its queues before it waits
            return
        with self._wake_lock:  # never write after close: the number may name another file by then
            if self._wake_w.fileno() != -1:
                try:
                    self._wake_w.send(b"\0")
                except OSError:  # full (already awake) or closing
                    pass

    def _is_transport_event(self) -> bool:
        if self._pdu_refused and self.state_machine.current_state == "Sta13":
            # The A-ABORT is sent (AA-1/AA-8). What follows is the refused PDU's body, not PDUs:
            # close now (Evt17, AR-5) instead of reading it as such until the peer stops.
            self.socket.close()  # type: ignore[union-attr]  # connected before the DUL runs
            return True
        if self._lend_wanted and self.state_machine.current_state == "Sta6":
            self._socket_lend()
            return False
        if self.event_queue.empty() and not self._kill_thread:
            self._wait_for_input()
        return super()._is_transport_event()

    def _wait_for_input(self) -> None:
        waiting = [self._wake_r]
        peer = self.socket.socket if self.socket is not None else None
        if isinstance(peer, ssl.SSLSocket) and peer.fileno() != -1 and peer.pending():
            return  # decrypted bytes wait in the TLS layer, where select() does not see them
        if isinstance(self.socket, FastSocket) and self.socket.pushed_back:
            return  # a PDU given back by a borrower (socket_borrow), to read now
        if peer is not None and peer.fileno() != -1:
            waiting.append(peer)
        try:
            ready, _, _ = select.select(waiting, [], [], IDLE_WAIT)
        except (OSError, ValueError):  # the socket was closed meanwhile: the DUL finds out next
            return
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass

    def _process_recv_primitive(self) -> bool:
        """Read first when the peer has sent something. pynetdicom's loop either sends one
        primitive or reads one PDU per turn, sending first: while C-FIND answers are queued
        faster than they go out, a C-CANCEL (or an A-ABORT) stays unread until the last one."""
        if self.socket is not None and self.state_machine.current_state != "Sta13" and self.socket.ready:
            return False  # run_reactor goes on to _is_transport_event, which reads it
        return super()._process_recv_primitive()

    def _read_pdu_data(self) -> None:
        """DULServiceProvider._read_pdu_data (pynetdicom 3.0), with P-DATA-TF PDUs decoded the
        short way (wire.p_data_decode): pynetdicom copies every received byte five times before the
        DIMSE layer sees it (joining the read, bytes(), one slice per item and its own copy of
        it for EVT_DATA_RECV), which for an 8 MB image was more CPU than writing it to disk.
        Every other PDU, a malformed P-DATA-TF, or anyone listening to the PDU events: pynetdicom's way."""
        try:
            header = self.socket.recv(6)  # type: ignore[union-attr]  # connected before the DUL runs
            pdu_type, _, length = struct.unpack(">BBL", header)
        except (OSError, TimeoutError, struct.error):
            self.event_queue.put("Evt17")  # transport closed (READ_PDU_EXC_A/B)
            return
        if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
            LOGGER.error(f"Unknown PDU type received '0x{pdu_type:02X}'")
            self.event_queue.put("Evt19")
            return
        limit = self.assoc.acceptor.maximum_length if pdu_type == 0x04 else PDU_LIMIT
        if length > limit:
            # Refused before anything is allocated for it: an invalid PDU (Evt19), which the
            # state machine answers with an A-ABORT (PS3.8 9.2.3, Table 9-10: AA-1 or AA-8).
            LOGGER.error(f"A PDU of type 0x{pdu_type:02X} declares {length} bytes, "
                         f"more than the {limit} allowed")  # fmt: skip
            self._pdu_refused = True
            self.event_queue.put("Evt19")
            return
        try:
            body = self.socket.recv(length)  # type: ignore[union-attr]  # connected before the DUL runs
        except (OSError, TimeoutError) as exc:
            LOGGER.error("Connection closed before the entire PDU was received")
            LOGGER.exception(exc)
            self.event_queue.put("Evt17")
            return
        if len(body) != length:
            LOGGER.error(
                f"The received PDU is shorter than expected ({6 + len(body)} of {6 + length} bytes received)"
            )
            self.event_queue.put("Evt17")
            return
        pdu: DecodedPData | _PDUType | None = (
            p_data_decode(body) if pdu_type == 0x04 and self._pdu_events_unheard() else None
        )
        if pdu is not None:
            self.event_queue.put("Evt10")  # P-DATA-TF received
        else:
            try:
                pdu, event = self._decode_pdu(bytes(header) + bytes(body))  # type: ignore[arg-type]  # any bytes
                self.event_queue.put(event)
            except Exception as exc:
                LOGGER.error("Unable to decode the received PDU data")
                LOGGER.exception(exc)
                self.event_queue.put("Evt19")
                return
        # A DecodedPData gives its primitive as a PDU does (to_primitive), which is all fsm.DT_2 asks.
        self._recv_pdu.put(pdu)  # type: ignore[arg-type]

    def _pdu_events_unheard(self) -> bool:
        """Nothing but pynetdicom's standard logging handler (which logs nothing for a P-DATA-TF
        PDU, _handlers._receive_data_tf) listens to the received-PDU events."""
        # A notification event's handlers: a list of (handler, args), whatever the annotation's union says.
        heard = [handler for handler, _args in self.assoc.get_handlers(evt.EVT_PDU_RECV)]  # type: ignore[misc]
        return not self.assoc.get_handlers(evt.EVT_DATA_RECV) and heard in ([], [standard_pdu_recv_handler])

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self.wake()
        return super().stop_dul()

    def run_reactor(self) -> None:
        """DULServiceProvider.run_reactor (pynetdicom 3.0), without its sleep between turns:
        the wait is in _is_transport_event. Even time.sleep(0) gave up the core once an image,
        and on a busy machine the thread then waited to get it back."""
        self._idle_timer.start()
        try:
            while not self._kill_thread:
                if not self.assoc._dul_ready.is_set():
                    self.assoc._dul_ready.set()  # lets the association's reactor start
                if self.artim_timer.expired:  # first, so that its event is queued ahead of others
                    self.event_queue.put("Evt18")
                try:
                    # Send one primitive or read one PDU a turn.
                    if self._process_recv_primitive():
                        pass
                    elif self._is_transport_event():
                        self._idle_timer.restart()
                except Exception as exc:
                    LOGGER.error("Exception in DUL.run(), aborting association")
                    LOGGER.exception(exc)
                    # As pynetdicom: past the state machine, which can no longer be trusted.
                    abort = A_ABORT_RQ()
                    abort.source, abort.reason_diagnostic = 0x02, 0x00
                    self.socket.send(abort.encode())  # type: ignore[union-attr]  # connected before the DUL runs
                    self.assoc.is_aborted = True
                    self.assoc.is_established = False
                    self.assoc._kill = True
                    self._kill_thread = True
                    return
                try:
                    event = self.event_queue.get(block=False)
                except queue.Empty:
                    continue
                self.state_machine.do_action(event)
        finally:
            with self._wake_lock:
                self._wake_r.close()
                self._wake_w.close()
            thread_ended()  # C-STORE is served on this thread (FastDIMSE._store_serve)


class EventDrivenAssociation(RetrieveAssociation):
    """pynetdicom's acceptor loop sleeps 1 ms between looks at its queues; this one waits
    until a DIMSE message or an ACSE primitive (release, abort) arrives. (The listener's
    associations serve C-MOVE and C-GET with retrieve_scp.py's: so does this one, with the
    sub-operations of store_scu.py. A C-GET's C-STORE sub-operations go out on this association
    from its own thread, each waiting for its answer on the DIMSE queue that the DUL thread fills.)"""

    def prepare(self) -> None:
        self._wakeup = threading.Event()
        self.dimse.msg_queue = WakingQueue(self._wakeup.set)
        self.dul.to_user_queue = WakingQueue(self._wakeup.set)

    def kill(self) -> None:
        self._wakeup.set()
        super().kill()

    def retrieve_service(self) -> type[RetrieveService]:
        """C-MOVE and C-GET with their sub-operations sent the short way (store_scu.py)."""
        return FastRetrieveService

    def run(self) -> None:
        try:
            super().run()
        finally:
            # A data set cut off by the end of the association: never acknowledged, not kept.
            cast(FastDIMSE, self.dimse).incoming_abort()  # server.py gave it that class
            association_finish(self)
            thread_ended()
            cast("Server", self._server).association_ended()  # ae.py's, whose associations these are

    def _serve_request(self, msg: DimseServiceType, context_id: int) -> None:
        """A worklist or Query/Retrieve C-FIND goes to WorklistFind or QueryFind; everything
        else the way pynetdicom serves it."""
        context = self._accepted_cx.get(context_id)
        service = None if context is None else SHORT_FIND.get(str(context.abstract_syntax))
        if (type(msg) is not C_FIND or context is None or self._sent_release or not msg.is_valid_request
                or service is None or msg.AffectedSOPClassUID != context.abstract_syntax):  # fmt: skip
            return super()._serve_request(msg, context_id)  # which refuses, ignores or serves it
        self.dimse.cancel_req = {}  # a C-CANCEL for an earlier message does not cancel this one
        self._is_paused = True  # as pynetdicom does while a service runs
        try:
            service(self).SCP(msg, context)
        except Exception:
            LOGGER.exception("C-FIND failed")
            self.abort()
        finally:
            self._is_paused = False
            self.dimse.cancel_req = {}

    def _run_reactor(self) -> None:
        """Association._run_reactor (pynetdicom 3.0), with a wait in place of its sleep."""
        self._is_paused = False
        served = False
        while not self._kill:
            if not served:  # after a message, look again at once: another may be queued
                self._wakeup.wait(IDLE_WAIT)
            self._wakeup.clear()  # before looking, so a put after the look wakes the next wait

            # Paused while the acceptor sends or receives itself (send_*(), release()). A sender
            # clears the checkpoint, then waits for _is_paused; pynetdicom's loop could have set it
            # and passed the wait just before, and then took the sender's answer off the queue (the
            # race that loses a C-STORE-RSP in pynetdicom's own requestor, issues #850, #875).
            # Looking at the checkpoint again once unpaused closes it: a sender that clears it
            # later sees _is_paused false and waits for the next pause, before anything is read.
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            if not self._reactor_checkpoint.is_set():
                served = True  # straight back to the pause
                continue

            context_id, msg = self.dimse.get_msg(block=False)
            served = bool(msg)
            if msg:
                self._serve_request(msg, context_id)  # type: ignore[arg-type]  # a message comes with its context

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                how = " (A-P-ABORT)" if self.acse.is_aborted("a-p-abort") else ""
                LOGGER.info(f"Association Aborted{how}")
                self.dul.receive_pdu(wait=False)  # so that EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return
