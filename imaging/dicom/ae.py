"""The DICOM node, built in one place: what it accepts, how it reads its sockets."""
import logging
import queue
import select
import socket
import ssl
import struct
import threading

from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_FIND, C_STORE
from pynetdicom._handlers import standard_pdu_recv_handler
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
    uid_to_service_class,
)
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from imaging.dicom.handlers import HANDLERS, association_finish, thread_ended
from imaging.dicom.integrity import is_uid
from imaging.dicom.status import CANNOT_UNDERSTAND
from imaging.dicom.wire import message_send, p_data_decode, store_refusal_command, store_response_command
from imaging.dicom.worklist_scp import WorklistFind
from imaging.services import Arriving

LOGGER = logging.getLogger("pynetdicom.association")  # where pynetdicom logs the reactor's lines

# Every transfer syntax pydicom knows, so that a compressed image is stored as it was sent.
# Where a sender offers several in one presentation context we take the first of ours it
# offers (PS3.8 9.3.3.2 leaves the choice to the acceptor): compressed as it comes, then
# explicit VR (keeps the VRs), deflated, implicit, and the retired big endian last.
UNCOMPRESSED = [
    ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
]  # fmt: skip
TRANSFER_SYNTAXES = [uid for uid in AllTransferSyntaxes if uid not in UNCOMPRESSED] + UNCOMPRESSED
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# How long a reactor thread waits when nothing wakes it, before it checks its timers (ARTIM,
# idle timeout) and whether its partner thread is still alive.
IDLE_WAIT = 0.02
# How long a TLS caller has for its handshake (FastRequestHandler.handle).
HANDSHAKE_TIMEOUT = 30
MAX_ASSOCIATIONS = 64  # served at once by one process (each holds a database connection)
# The longest PDU we read other than a P-DATA-TF (bounded by our Maximum Length Received, PS3.8
# D.1). An A-ASSOCIATE-RQ comes before any maximum is negotiated; 128 presentation contexts of
# 30 transfer syntaxes and a 64 KiB user identity come to about 300 KiB, so 1 MiB refuses no
# real one. The others have 4-byte bodies (PS3.8 9.3.4, 9.3.6-9.3.8).
PDU_LIMIT = 2**20
# FastSocket.recv allocates at most this much ahead of the bytes that have arrived.
RECV_AHEAD = 2**20


def ae_build(*, ae_title, max_pdu):
    # pynetdicom formats every C-FIND request and response identifier for its debug log before
    # asking the logger (service_class.py): 0.1-0.3 ms a worklist answer, for lines nobody reads.
    debug = logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG)
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = debug
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.maximum_associations = MAX_ASSOCIATIONS
    ae.network_timeout = 60
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    # Worklist queries and procedure steps are small: no compression to offer.
    ae.add_supported_context(ModalityWorklistInformationFind, UNCOMPRESSED)
    ae.add_supported_context(ModalityPerformedProcedureStep, UNCOMPRESSED)
    return ae


class FastSocket(AssociationSocket):
    """Reads large PDUs in large pieces, and ACKs at once.

    pynetdicom reads 4 KiB at a time, which caps large-image throughput. And a sender that
    leaves Nagle's algorithm on waits for our ACK before sending the rest of each small
    message; Linux delays that ACK up to 40 ms unless TCP_QUICKACK is set again after reads
    (it is not sticky). See VETERINARY-DICOM-HL7.md, "Network detail that matters for speed".
    """

    def recv(self, nr_bytes):
        """``nr_bytes`` (fewer if the connection closes), in a buffer that grows with what
        arrives rather than with what was announced (EventDrivenDUL bounds ``nr_bytes`` too)."""
        buffer = bytearray(min(nr_bytes, RECV_AHEAD))
        read = 0
        while read < nr_bytes:
            if read == len(buffer):
                buffer += bytes(min(nr_bytes - read, read))  # doubled, at most to nr_bytes
            with memoryview(buffer)[read:] as view:  # released before the buffer may grow
                got = self.socket.recv_into(view)
            if QUICKACK is not None:
                self.socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            if not got:
                return buffer[:read]
            read += got
        return buffer


class WakingQueue(queue.Queue):
    """A queue that calls ``wake`` after each put, so that its reader can sleep until then."""

    def __init__(self, wake):
        super().__init__()
        self.wake = wake

    def put(self, item, block=True, timeout=None):
        super().put(item, block, timeout)
        self.wake()


class EventDrivenDUL(DULServiceProvider):
    """The DUL thread sleeps in select() on the socket and a wake-up socket, instead of
    polling both every 0.1 ms: four polling associations kept a core busy doing nothing.
    Anything put on ``to_provider_queue`` (our answers), and a stop, wakes it at once."""

    def prepare(self):
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_lock = threading.Lock()
        self._run_loop_delay = 0  # the wait is in _is_transport_event
        self._pdu_refused = False  # a PDU longer than allowed was announced (_read_pdu_data)
        self.to_provider_queue = WakingQueue(self.wake)

    def wake(self):
        if threading.current_thread() is self:  # awake: it looks at its queues before it waits
            return
        with self._wake_lock:  # never write after close: the number may name another file by then
            if self._wake_w.fileno() != -1:
                try:
                    self._wake_w.send(b"\0")
                except OSError:  # full (already awake) or closing
                    pass

    def _is_transport_event(self):
        if self._pdu_refused and self.state_machine.current_state == "Sta13":
            # The A-ABORT is sent (AA-1/AA-8). What follows is the refused PDU's body, not PDUs:
            # close now (Evt17, AR-5) instead of reading it as such until the peer stops.
            self.socket.close()
            return True
        if self.event_queue.empty() and not self._kill_thread:
            self._wait_for_input()
        return super()._is_transport_event()

    def _wait_for_input(self):
        waiting = [self._wake_r]
        peer = self.socket.socket if self.socket is not None else None
        if isinstance(peer, ssl.SSLSocket) and peer.fileno() != -1 and peer.pending():
            return  # decrypted bytes wait in the TLS layer, where select() does not see them
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

    def _process_recv_primitive(self):
        """Read first when the peer has sent something. pynetdicom's loop either sends one
        primitive or reads one PDU per turn, sending first: while C-FIND answers are queued
        faster than they go out, a C-CANCEL (or an A-ABORT) stays unread until the last one."""
        if self.socket is not None and self.state_machine.current_state != "Sta13" and self.socket.ready:
            return False  # run_reactor goes on to _is_transport_event, which reads it
        return super()._process_recv_primitive()

    def _read_pdu_data(self):
        """DULServiceProvider._read_pdu_data (pynetdicom 3.0), with P-DATA-TF PDUs decoded the
        short way (wire.p_data_decode): pynetdicom copies every received byte five times before the
        DIMSE layer sees it (joining the read, bytes(), one slice per item and its own copy of
        it for EVT_DATA_RECV), which for an 8 MB image was more CPU than writing it to disk.
        Every other PDU, a malformed P-DATA-TF, or anyone listening to the PDU events: pynetdicom's way."""
        try:
            header = self.socket.recv(6)
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
            body = self.socket.recv(length)
        except (OSError, TimeoutError) as exc:
            LOGGER.error("Connection closed before the entire PDU was received")
            LOGGER.exception(exc)
            self.event_queue.put("Evt17")
            return
        if len(body) != length:
            LOGGER.error(f"The received PDU is shorter than expected ({6 + len(body)} of {6 + length} bytes received)")
            self.event_queue.put("Evt17")
            return
        pdu = p_data_decode(body) if pdu_type == 0x04 and self._pdu_events_unheard() else None
        if pdu is not None:
            self.event_queue.put("Evt10")  # P-DATA-TF received
        else:
            try:
                pdu, event = self._decode_pdu(bytes(header) + bytes(body))
                self.event_queue.put(event)
            except Exception as exc:
                LOGGER.error("Unable to decode the received PDU data")
                LOGGER.exception(exc)
                self.event_queue.put("Evt19")
                return
        self._recv_pdu.put(pdu)

    def _pdu_events_unheard(self):
        """Nothing but pynetdicom's standard logging handler (which logs nothing for a P-DATA-TF
        PDU, _handlers._receive_data_tf) listens to the received-PDU events."""
        heard = [handler for handler, _args in self.assoc.get_handlers(evt.EVT_PDU_RECV)]
        return not self.assoc.get_handlers(evt.EVT_DATA_RECV) and heard in ([], [standard_pdu_recv_handler])

    def kill_dul(self):
        super().kill_dul()
        self.wake()

    def stop_dul(self):
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self.wake()
        return super().stop_dul()

    def run_reactor(self):
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
                    self.socket.send(abort.encode())
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


class EventDrivenAssociation(Association):
    """pynetdicom's acceptor loop sleeps 1 ms between looks at its queues; this one waits
    until a DIMSE message or an ACSE primitive (release, abort) arrives."""

    def prepare(self):
        self._wakeup = threading.Event()
        self.dimse.msg_queue = WakingQueue(self._wakeup.set)
        self.dul.to_user_queue = WakingQueue(self._wakeup.set)

    def kill(self):
        self._wakeup.set()
        super().kill()

    def run(self):
        try:
            super().run()
        finally:
            association_finish(self)
            thread_ended()
            self._server.association_ended()

    def _serve_request(self, msg, context_id):
        """A worklist C-FIND goes to WorklistFind; everything else the way pynetdicom serves it."""
        context = self._accepted_cx.get(context_id)
        if (type(msg) is not C_FIND or context is None or self._sent_release or not msg.is_valid_request
                or context.abstract_syntax != ModalityWorklistInformationFind
                or msg.AffectedSOPClassUID != ModalityWorklistInformationFind):  # fmt: skip
            return super()._serve_request(msg, context_id)  # which refuses, ignores or serves it
        self.dimse.cancel_req = {}  # a C-CANCEL for an earlier message does not cancel this one
        self._is_paused = True  # as pynetdicom does while a service runs
        try:
            WorklistFind(self).SCP(msg, context)
        except Exception:
            LOGGER.exception("Worklist C-FIND failed")
            self.abort()
        finally:
            self._is_paused = False
            self.dimse.cancel_req = {}

    def _run_reactor(self):
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
                self._serve_request(msg, context_id)

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


class FastDIMSE(DIMSEServiceProvider):
    """Serves a C-STORE request where it is decoded, and encodes a plain C-STORE success
    response itself. pynetdicom builds a pydicom data set
    for every response and encodes it twice (the second time for its group length): that was
    a fifth of the listener's CPU per image. Anything else goes pynetdicom's way. (These skip
    EVT_DIMSE_SENT, which nothing of ours listens to: pynetdicom's own handler logs nothing for
    a C-STORE-RSP.)"""

    def receive_primitive(self, primitive):
        """pynetdicom's, except that a C-STORE request is served here, on the DUL thread, once
        its last fragment is in. Queued for the association thread, with its answer queued
        back, an image cost two thread wake-ups: on a busy machine each waits for a core, and
        over one association they were most of an image's time. The handler only checks,
        writes and queues (handlers.on_store). A peer has one operation outstanding at a time
        (we negotiate no asynchronous operations window, PS3.7 D.3.3.3), so the association thread
        serves nothing meanwhile; anything unusual goes pynetdicom's way."""
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
        if self.arriving is not None and self.arriving[0] is message:
            self._store_stream(message)  # its last fragment
        self.message = None
        evt.trigger(self.assoc, evt.EVT_DIMSE_RECV, {"message": message})
        try:
            request = message.message_to_primitive()
            problem = None if request.is_valid_request else "a required element is missing"
        except Exception as exc:  # pynetdicom refuses a value: a UID of 200 characters
            problem = str(exc)
        if problem is not None:
            self.arriving_abort()
            if not self._store_refuse(message, problem):
                LOGGER.error(f"Received an invalid C-STORE request: {problem}")
                self.dul.event_queue.put("Evt19")  # as pynetdicom: the association ends
            return
        if not self._store_serve(request, message.context_id):
            self.msg_queue.put((message.context_id, request))

    def _store_refuse(self, message, problem):
        """Answer a C-STORE request whose command set is not a valid one with 0xC000 and why
        (PS3.4 B.2.3), where pynetdicom aborts the association (or, for a missing element, never
        answers). Its data set has been read whole, so the association can go on. False if the
        command has no Message ID to answer to (PS3.7 9.3.1.2): only an abort is left then."""
        command = message.command_set
        try:
            message_id = int(command.MessageID)
        except Exception:
            return False
        uids = {}
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
        command = store_refusal_command(
            message_id, CANNOT_UNDERSTAND, f"Invalid request: {problem}",
            sop_class_uid=uids.get("AffectedSOPClassUID"),
            sop_instance_uid=uids.get("AffectedSOPInstanceUID"),
        )  # fmt: skip
        message_send(self, message.context_id, command)
        return True

    arriving = None  # (message, Arriving): the C-STORE data set being written as it comes

    def _store_stream(self, message):
        """Write what has arrived of a C-STORE request's data set to storage now (Arriving),
        not once the last fragment is in: an 8 MB image then costs the time of its transfer
        plus a short fsync, instead of its transfer plus all of its writing. The data set is
        still assembled in memory too, for the handler to check before anything is committed.
        A data set that arrives whole in its first PDU (most CT and MR slices) is stored whole
        by the handler: a part file and a rename would only cost it time."""
        if self.arriving is None or self.arriving[0] is not message:
            self.arriving_abort()  # one operation at a time: an earlier one never finished
            command, assoc = message.command_set, self.assoc
            context = assoc._accepted_cx.get(message.context_id)
            if context is None or not Arriving.fits(command.get("AffectedSOPInstanceUID")):
                return  # the handler refuses it, or stores it whole
            self.arriving = (message, Arriving(
                sop_class_uid=command.AffectedSOPClassUID, sop_instance_uid=command.AffectedSOPInstanceUID,
                transfer_syntax=context.transfer_syntax[0], calling_ae=assoc.requestor.ae_title.strip(),
            ))  # fmt: skip
        arriving = self.arriving[1]
        buffer = message.data_set
        end = buffer.tell()
        if end > arriving.size:
            with buffer.getbuffer() as view:
                arriving.write(view[arriving.size : end])

    def arriving_take(self, request):
        """The Arriving written for ``request`` (a C-STORE primitive whose data set is complete),
        now the handler's to commit or abort; None if it was not written as it came."""
        if self.arriving is None:
            return None
        message, arriving = self.arriving
        if message.data_set is not request.DataSet:
            return None
        self.arriving = None
        return arriving

    def arriving_abort(self):
        """Throw away a data set that never completed (the association ended, or was aborted)."""
        if self.arriving is not None:
            _message, arriving = self.arriving
            self.arriving = None
            arriving.abort()

    def _store_serve(self, request, context_id):
        """Serve a C-STORE request on this thread; False if it should be queued instead."""
        assoc = self.assoc
        context = assoc._accepted_cx.get(context_id)
        if (context is None or not request.is_valid_request or assoc._sent_release or not assoc.is_established
                or not self.msg_queue.empty() or request.AffectedSOPClassUID in assoc.acceptor.accepted_common_extended
                or uid_to_service_class(request.AffectedSOPClassUID) is not StorageServiceClass):  # fmt: skip
            return False
        StorageServiceClass(assoc).SCP(request, context)
        return True

    def send_msg(self, primitive, context_id):
        if type(primitive) is not C_STORE or not _plain_success(primitive):
            return super().send_msg(primitive, context_id)
        command = store_response_command(primitive)
        if self.maximum_pdu_size and len(command) + 6 > self.maximum_pdu_size:
            return super().send_msg(primitive, context_id)
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + command))  # command, last fragment
        self.dul.send_pdu(pdata)


def _plain_success(primitive):
    return (
        primitive.MessageIDBeingRespondedTo is not None and primitive.Status == 0x0000
        and primitive.ErrorComment is None and primitive.OffendingElement is None
        and primitive.AffectedSOPClassUID and primitive.AffectedSOPInstanceUID
    )  # fmt: skip


class FastRequestHandler(RequestHandler):
    def handle(self):
        """With TLS, the handshake first, here on the connection's own thread: pynetdicom does
        it in the thread that accepts, where one caller that never finishes its handshake
        stops everyone else from connecting. A caller that fails it (plain TCP on a TLS port, a
        certificate we do not trust) is closed; nothing else notices."""
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.settimeout(HANDSHAKE_TIMEOUT)
                self.request.do_handshake()
                self.request.settimeout(None)
            except (OSError, ValueError) as exc:  # ssl.SSLError, a timeout, a reset
                LOGGER.warning(f"TLS handshake with {self.client_address[0]} failed: {exc}")
                self.server.shutdown_request(self.request)
                self.server.association_ended()
                return
        super().handle()

    def _create_association(self):
        assoc = super()._create_association()
        client = self.request
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # pynetdicom made these objects (and wired them to each other); give the same objects
        # our faster behaviour before their threads start.
        assoc.dul.socket.__class__ = FastSocket
        assoc.dimse.__class__ = FastDIMSE
        assoc.dul.__class__ = EventDrivenDUL
        assoc.dul.prepare()
        assoc.__class__ = EventDrivenAssociation
        assoc.prepare()
        return assoc


class SharedContexts(list):
    """The supported presentation contexts, shared by every association: pynetdicom deep-copies
    them for each one (every storage class times every transfer syntax: ~0.1 s of CPU), but
    negotiation only reads them and builds new contexts for its answer
    (presentation.negotiate_as_acceptor)."""

    def __deepcopy__(self, memo):
        return list(self)


class Server(ThreadedAssociationServer):
    """pynetdicom's threaded server, with our sockets and reactors."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.RequestHandlerClass = FastRequestHandler
        self.contexts = SharedContexts(self.contexts)

    def get_request(self):
        client, address = self.socket.accept()
        return self.tls_wrap(client), address

    def tls_wrap(self, client):
        """The accepted socket, as TLS if the server has a context; the handshake is left to
        the connection's thread (FastRequestHandler.handle)."""
        if self.ssl_context is None:
            return client
        return self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)

    def association_ended(self):
        """Called once for every connection served, when its association thread ends."""


class HandedServer(Server):
    """Serves connections that the dispatcher process accepted and handed over ``channel`` (a
    Unix socket, SCM_RIGHTS), instead of accepting them itself; a byte back on the channel for
    each connection that ends lets the dispatcher hand the next one to the least busy process
    (manage.py dicom_listener --processes N). ``parent_gone`` is called if the dispatcher
    closes the channel (it died): this process should stop then."""

    def __init__(self, *args, channel, parent_gone, **kwargs):
        self.channel, self.parent_gone = channel, parent_gone
        self.channel_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def server_bind(self):
        self.socket.close()  # the TCP socket TCPServer made: this server reads the channel instead
        self.socket = self.channel

    def server_activate(self):
        pass

    def get_request(self):
        try:
            message, fds, _flags, _address = socket.recv_fds(self.channel, 1, 1)
        except BlockingIOError:  # another reader took it (there is none; but never block here)
            raise OSError("nothing to read") from None
        if not fds:
            if not message:
                self.parent_gone()
            raise OSError("a message without a socket" if message else "the dispatcher closed the channel")
        client = socket.socket(fileno=fds[0])
        try:
            address = client.getpeername()
            return self.tls_wrap(client), address
        except OSError:  # the caller has gone already
            client.close()
            self.association_ended()
            raise

    def process_request_thread(self, request, client_address):
        try:
            self.finish_request(request, client_address)  # starts the association's own thread
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
            self.association_ended()

    def server_close(self):
        with self.channel_lock:  # no thread is writing to it as it closes
            super().server_close()

    def association_ended(self):
        with self.channel_lock:
            try:
                self.channel.send(b"d")
            except OSError:  # the dispatcher has gone, or we are stopping
                pass


def server_start(ae, address, *, channel=None, parent_gone=None, ssl_context=None):
    """Serve in background threads; returns the server (``shutdown()`` stops it). With a
    ``channel``, serve the connections a dispatcher hands over it (HandedServer); ``address``
    is then the dispatcher's listening address. With an ``ssl_context`` (tls.py), every
    connection is TLS; the fast path serves it as it serves TCP."""
    if channel is None:
        server = ae.make_server(address, evt_handlers=HANDLERS, server_class=Server, ssl_context=ssl_context)
    else:
        server = ae.make_server(
            address, evt_handlers=HANDLERS, server_class=HandedServer, channel=channel, parent_gone=parent_gone,
            ssl_context=ssl_context,
        )  # fmt: skip
    ae._servers.append(server)  # so that ae.shutdown() stops it too
    threading.Thread(target=server.serve_forever, name="dicom-server", daemon=True).start()
    return server
