"""The DICOM listener's fast path: speed work on pynetdicom's private machinery, in one place.

Nothing outside this package knows it exists: ae.py asks ``server_class`` for the server to
run when settings.DICOM_FAST_PATH is on, and the handlers see pynetdicom's public event
interface either way. With it off the listener is plain pynetdicom (its DUL, association
reactor, DIMSE and C-FIND service; C-STORE data sets written to a file by pynetdicom,
STORE_RECV_CHUNKED_DATASET).

server.py        gives each accepted association the classes below (swaps ``__class__``)
reactor.py       association threads that sleep until the socket or a queue has something,
                 and read PDUs in large pieces
dimse.py         C-STORE served where it is read and written to storage as it arrives
                 (an ingest IncomingObject, handed over as ``event.dataset_path``); the plain
                 C-STORE answer encoded directly
worklist_scp.py  worklist and Query/Retrieve C-FIND answers sent as they were encoded
                 (datasets.EncodedDataset)
store_scu.py     C-MOVE's and C-GET's C-STORE sub-operations: stored bytes written straight to
                 the socket, answers read there (our own move requestor; a C-GET borrows its
                 association's socket from the DUL thread), pending responses written directly
wire.py          PDUs and command sets read and written directly

It overrides and calls about twenty private names of pynetdicom 3.0.4, so it refuses to start
on any other version (``version_check``): read those names again in the new version's source
(association.py, dul.py, dimse.py, dimse_messages.py, service_class.py, transport.py) before
adding it to SUPPORTED_VERSIONS.
"""

from typing import TYPE_CHECKING

import pynetdicom

if TYPE_CHECKING:
    from imaging.dicom.net.ae import Server

SUPPORTED_VERSIONS = ("3.0.4",)


class UnsupportedPynetdicom(RuntimeError):
    pass


def version_check(version: str | None = None) -> None:
    """Raise UnsupportedPynetdicom unless ``version`` (the installed pynetdicom's if None) is one
    the fast path was written for."""
    version = pynetdicom.__version__ if version is None else version
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedPynetdicom(
            f"The DICOM fast path (imaging/dicom/net/fast/) was written for pynetdicom "
            f"{', '.join(SUPPORTED_VERSIONS)} and uses its private names; pynetdicom {version} is "
            f"installed. Set DICOM_FAST_PATH=false to run plain pynetdicom, or check the fast path "
            f"against {version} and add it to SUPPORTED_VERSIONS."
        )


def server_class(base: "type[Server]") -> "type[Server]":
    """``base`` (a pynetdicom ThreadedAssociationServer of ae.py) with the fast path's classes
    for every association it accepts. Checks the pynetdicom version first."""
    version_check()
    from imaging.dicom.net.fast.server import fast_server_class

    return fast_server_class(base)
