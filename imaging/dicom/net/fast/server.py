"""The fast path wired into a server: each accepted association gets the classes of
reactor.py and dimse.py, before its threads start."""

import socket
from typing import TYPE_CHECKING, Any, cast

from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from imaging.dicom.net.fast.dimse import FastDIMSE
from imaging.dicom.net.fast.reactor import EventDrivenAssociation, EventDrivenDUL, FastSocket

if TYPE_CHECKING:
    from imaging.dicom.net.ae import Server


class SharedContexts(list[PresentationContext]):
    """The supported presentation contexts, shared by every association: pynetdicom deep-copies
    them for each one (every storage class times every transfer syntax: ~0.1 s of CPU), but
    negotiation only reads them and builds new contexts for its answer
    (presentation.negotiate_as_acceptor)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        return list(self)


def fast_server_class(base: "type[Server]") -> "type[Server]":
    # A class made from a class given at run time: mypy cannot check a base it does not know
    # statically (valid-type, misc), so the classes below are checked against ae.py's.
    class FastRequestHandler(base.RequestHandlerClass):  # type: ignore[name-defined]
        def association_serve(self) -> None:
            """Start the association's thread; it reports its own end to the server
            (EventDrivenAssociation.run)."""
            self.association_start()

        def _create_association(self) -> Association:
            assoc: Association = super()._create_association()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # pynetdicom made these objects (and wired them to each other); give the same
            # objects our faster behaviour before their threads start.
            assoc.dul.socket.__class__ = FastSocket
            assoc.dimse.__class__ = FastDIMSE
            assoc.dul.__class__ = EventDrivenDUL
            cast(EventDrivenDUL, assoc.dul).prepare()  # its class, now
            assoc.__class__ = EventDrivenAssociation
            cast(EventDrivenAssociation, assoc).prepare()
            return assoc

    class FastServer(base):  # type: ignore[valid-type,misc]
        RequestHandlerClass = FastRequestHandler
        contexts: list[PresentationContext]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.RequestHandlerClass = FastRequestHandler
            self.contexts = SharedContexts(self.contexts)

    FastServer.__name__ = FastServer.__qualname__ = f"Fast{base.__name__}"
    return FastServer
