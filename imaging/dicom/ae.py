"""The DICOM node, built in one place: what it accepts, how it reads its sockets."""
import socket
import threading

from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, AllStoragePresentationContexts
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind, Verification
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from imaging.dicom.handlers import HANDLERS

# Every transfer syntax pydicom knows, so that a compressed image is stored as it was sent.
# Where a sender offers several in one presentation context we take the first of ours it
# offers (PS3.8 9.3.3.2 leaves the choice to the acceptor): compressed as it comes, then
# explicit VR (keeps the VRs), deflated, implicit, and the retired big endian last.
UNCOMPRESSED = [
    ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
]  # fmt: skip
TRANSFER_SYNTAXES = [uid for uid in AllTransferSyntaxes if uid not in UNCOMPRESSED] + UNCOMPRESSED
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def ae_build(*, ae_title, max_pdu):
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.maximum_associations = 64
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
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        read = 0
        while read < nr_bytes:
            got = self.socket.recv_into(view[read:], nr_bytes - read)
            if QUICKACK is not None:
                self.socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            if not got:
                return buffer[:read]
            read += got
        return buffer


class FastRequestHandler(RequestHandler):
    def _create_association(self):
        assoc = super()._create_association()
        client = self.request
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # pynetdicom made its socket wrapper (and told the state machine of the connection);
        # give that same object our faster read.
        assoc.dul.socket.__class__ = FastSocket
        # The DUL thread sleeps this long whenever it finds nothing to read; every message
        # waits for it. pynetdicom's 1 ms costs more per image than our whole handler.
        assoc.dul._run_loop_delay = 0.0001
        return assoc


class Server(ThreadedAssociationServer):
    """pynetdicom's threaded server, with our sockets."""

    reuse_port = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.RequestHandlerClass = FastRequestHandler

    def server_bind(self):
        if self.reuse_port:
            # Several listener processes share the port; the kernel spreads connections.
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class SharedPortServer(Server):
    reuse_port = True


def server_start(ae, address, *, shared_port=False):
    """Serve in background threads; returns the server (``shutdown()`` stops it)."""
    server = ae.make_server(
        address, evt_handlers=HANDLERS, server_class=SharedPortServer if shared_port else Server
    )
    ae._servers.append(server)  # so that ae.shutdown() stops it too
    threading.Thread(target=server.serve_forever, name="dicom-server", daemon=True).start()
    return server
