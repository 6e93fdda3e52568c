"""The DICOM node, built in one place: what it accepts, and the servers that accept its
connections: pynetdicom's own, or with the fast path (fast/) when settings.DICOM_FAST_PATH."""

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import (sop_class.py)
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from imaging.dicom.net.handlers import HANDLERS
from imaging.dicom.net.retrieve_scp import GET_MODELS, MOVE_MODELS, association_adopt

LOGGER = logging.getLogger("pynetdicom.association")  # where pynetdicom logs association lines

# Every transfer syntax pydicom knows, so that a compressed image is stored as it was sent.
# Where a sender offers several in one presentation context we take the first of ours it
# offers (PS3.8 9.3.3.2 leaves the choice to the acceptor): compressed as it comes, then
# explicit VR (keeps the VRs), deflated, implicit, and the retired big endian last.
UNCOMPRESSED = [
    ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
]  # fmt: skip
TRANSFER_SYNTAXES = [uid for uid in AllTransferSyntaxes if uid not in UNCOMPRESSED] + UNCOMPRESSED
# How long a TLS caller has for its handshake (ListenerRequestHandler.handle).
HANDSHAKE_TIMEOUT = 30
MAX_ASSOCIATIONS = 64  # served at once by one process (each holds a database connection)


def ae_build(*, ae_title: str, max_pdu: int, fast: bool | None = None) -> AE:
    """The AE. Without the fast path, pynetdicom writes each C-STORE data set to a temporary
    file as it arrives (STORE_RECV_CHUNKED_DATASET) instead of holding it in memory: the
    handler passes ``event.dataset_path`` to the service. (pynetdicom's setting is process-wide;
    the fast path reads data sets its own way and needs it off.) C-MOVE and C-GET send a stored
    object the peer accepts as stored from its file, as it is read (STORE_SEND_CHUNKED_DATASET)."""
    fast = settings.DICOM_FAST_PATH if fast is None else fast
    _config.STORE_RECV_CHUNKED_DATASET = not fast
    _config.STORE_SEND_CHUNKED_DATASET = True
    # pynetdicom formats every C-FIND request and response identifier for its debug log before
    # asking the logger (service_class.py): 0.1-0.3 ms a worklist answer, for lines nobody reads.
    debug = logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG)
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = debug
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.maximum_associations = MAX_ASSOCIATIONS
    ae.network_timeout = 60
    # The associations we request (C-MOVE to its destination): connecting, and a TLS handshake,
    # give up after this instead of waiting for ever on a peer that never answers.
    ae.connection_timeout = 30
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None  # pynetdicom's list names each one's
        # A C-GET requestor proposes the storage classes with itself as SCP (SCP/SCU Role
        # Selection, PS3.7 D.3.3.4; PS3.4 C.4.3): accept whichever roles it proposes, so that
        # we may send it objects on its association and it may still send us its own.
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    # Worklist queries and procedure steps are small: no compression to offer.
    ae.add_supported_context(ModalityWorklistInformationFind, UNCOMPRESSED)
    ae.add_supported_context(ModalityPerformedProcedureStep, UNCOMPRESSED)
    # Query/Retrieve C-FIND (PS3.4 C.6.1, C.6.2): identifiers, as small.
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind, UNCOMPRESSED)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind, UNCOMPRESSED)
    for model in (*MOVE_MODELS, *GET_MODELS):  # Patient Root and Study Root retrieves
        ae.add_supported_context(model, UNCOMPRESSED)
    # Storage Commitment Push Model (PS3.4 J): the modality's N-ACTION, and our N-EVENT-REPORT on
    # the same association (handlers.on_n_action, commitment.py). The modality is the SOP Class's
    # SCU and the association's requestor: default roles, nothing to negotiate.
    ae.add_supported_context(StorageCommitmentPushModel, UNCOMPRESSED)
    return ae


class ListenerRequestHandler(RequestHandler):
    server: "Server"

    def handle(self) -> None:
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
        self.association_serve()

    def association_start(self) -> None:
        super().handle()  # pynetdicom's: make the association and start its thread

    def _create_association(self) -> Association:
        """pynetdicom's association, serving C-MOVE and C-GET with ours (retrieve_scp.py)."""
        assoc = super()._create_association()
        association_adopt(assoc)
        return assoc

    def association_serve(self) -> None:
        """Start the association's thread; a server that counts associations (HandedServer)
        hears when it ends: this thread waits for it."""
        self.association_start()
        if not self.server.counts_associations:
            return
        for assoc in self.server.ae.active_associations:
            if assoc.dul.socket is not None and assoc.dul.socket.socket is self.request:
                assoc.join()
        self.server.association_ended()


class Server(ThreadedAssociationServer):
    """pynetdicom's threaded server, with the TLS handshake on the connection's thread."""

    RequestHandlerClass = ListenerRequestHandler
    counts_associations = False
    # Closing the server does not wait for the connections' threads (which, counting, wait for
    # their associations): listener.serve decides how long associations in progress may take.
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.RequestHandlerClass = type(self).RequestHandlerClass

    def get_request(self) -> tuple[socket.socket, Any]:
        assert self.socket is not None  # bound in __init__ (TCPServer.server_bind)
        client, address = self.socket.accept()
        return self.tls_wrap(client), address

    def tls_wrap(self, client: socket.socket) -> socket.socket:
        """The accepted socket, as TLS if the server has a context; the handshake is left to
        the connection's thread (ListenerRequestHandler.handle)."""
        if self.ssl_context is None:
            return client
        return self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)

    def association_ended(self) -> None:
        """Called once for every connection served, when its association ends."""


class HandedServer(Server):
    """Serves connections that the dispatcher process accepted and handed over ``channel`` (a
    Unix socket, SCM_RIGHTS), instead of accepting them itself; a byte back on the channel for
    each connection that ends lets the dispatcher hand the next one to the least busy process
    (manage.py dicom_listener --processes N). ``parent_gone`` is called if the dispatcher
    closes the channel (it died): this process should stop then."""

    counts_associations = True

    def __init__(
        self, *args: Any, channel: socket.socket, parent_gone: Callable[[], object], **kwargs: Any
    ) -> None:
        self.channel, self.parent_gone = channel, parent_gone
        self.channel_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        assert self.socket is not None  # TCPServer.__init__ made it
        self.socket.close()  # the TCP socket TCPServer made: this server reads the channel instead
        self.socket = self.channel

    def server_activate(self) -> None:
        pass

    def get_request(self) -> tuple[socket.socket, Any]:
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

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)  # starts the association's own thread
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
            self.association_ended()

    def server_close(self) -> None:
        with self.channel_lock:  # no thread is writing to it as it closes
            super().server_close()

    def association_ended(self) -> None:
        with self.channel_lock:
            try:
                self.channel.send(b"d")
            except OSError:  # the dispatcher has gone, or we are stopping
                pass


def server_start(
    ae: AE,
    address: tuple[str, int],
    *,
    channel: socket.socket | None = None,
    parent_gone: Callable[[], object] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    fast: bool | None = None,
) -> ThreadedAssociationServer:
    """Serve in background threads; returns the server (``shutdown()`` stops it). With a
    ``channel``, serve the connections a dispatcher hands over it (HandedServer); ``address``
    is then the dispatcher's listening address. With an ``ssl_context`` (tls.py), every
    connection is TLS. ``fast`` (settings.DICOM_FAST_PATH if None): with the fast path
    (fast/), which refuses to start on a pynetdicom version it was not written for."""
    fast = settings.DICOM_FAST_PATH if fast is None else fast
    server_class = Server if channel is None else HandedServer
    if fast:
        from imaging.dicom.net.fast import server_class as fast_server_class

        server_class = fast_server_class(server_class)
    if channel is None:
        server = ae.make_server(
            address, evt_handlers=HANDLERS, server_class=server_class, ssl_context=ssl_context
        )
    else:
        server = ae.make_server(
            address, evt_handlers=HANDLERS, server_class=server_class, channel=channel, parent_gone=parent_gone,
            ssl_context=ssl_context,
        )  # fmt: skip
    ae._servers.append(server)  # so that ae.shutdown() stops it too
    threading.Thread(target=server.serve_forever, name="dicom-server", daemon=True).start()
    return server
