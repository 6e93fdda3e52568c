"""The fast path wired into a server: each accepted association gets the classes of
reactor.py and dimse.py, before its threads start."""

import socket

from imaging.dicom.net.fast.dimse import FastDIMSE
from imaging.dicom.net.fast.reactor import EventDrivenAssociation, EventDrivenDUL, FastSocket


class SharedContexts(list):
    """The supported presentation contexts, shared by every association: pynetdicom deep-copies
    them for each one (every storage class times every transfer syntax: ~0.1 s of CPU), but
    negotiation only reads them and builds new contexts for its answer
    (presentation.negotiate_as_acceptor)."""

    def __deepcopy__(self, memo):
        return list(self)


def fast_server_class(base):
    class FastRequestHandler(base.RequestHandlerClass):
        def association_serve(self):
            """Start the association's thread; it reports its own end to the server
            (EventDrivenAssociation.run)."""
            self.association_start()

        def _create_association(self):
            assoc = super()._create_association()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # pynetdicom made these objects (and wired them to each other); give the same
            # objects our faster behaviour before their threads start.
            assoc.dul.socket.__class__ = FastSocket
            assoc.dimse.__class__ = FastDIMSE
            assoc.dul.__class__ = EventDrivenDUL
            assoc.dul.prepare()
            assoc.__class__ = EventDrivenAssociation
            assoc.prepare()
            return assoc

    class FastServer(base):
        RequestHandlerClass = FastRequestHandler

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.RequestHandlerClass = FastRequestHandler
            self.contexts = SharedContexts(self.contexts)

    FastServer.__name__ = FastServer.__qualname__ = f"Fast{base.__name__}"
    return FastServer
