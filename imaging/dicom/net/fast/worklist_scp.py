"""The Modality Worklist C-FIND SCP (PS3.4 K.4.1.3), answering with the identifiers' own
encodings (handlers.on_find yields datasets.EncodedDataset) in one P-DATA-TF PDU each, paced so
that a C-CANCEL still stops a large result; and the Query/Retrieve C-FIND SCP the same way.
reactor.EventDrivenAssociation hands them the worklist's and Query/Retrieve's C-FINDs."""

import logging
import time
from collections.abc import Callable

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import BasicWorklistManagementServiceClass, QueryRetrieveServiceClass

from imaging.dicom.net.fast.wire import find_response_command, message_send
from imaging.dicom.records.datasets import EncodedDataset

LOGGER = logging.getLogger("pynetdicom.association")  # where pynetdicom logs the reactor's lines
# Worklist answers queued for sending before the next one waits (WorklistFind._paced): more
# than a modality's usual query matches, so that those never wait.
QUEUED_PDUS = 32
PACING_WAIT = 0.0005


class ShortFind:
    """A C-FIND SCP answering the short way (mixed into pynetdicom's service classes below).

    pynetdicom's C-FIND SCP encodes each answer with pydicom, builds each C-FIND-RSP as a
    pydicom data set that it encodes twice (the second time for its group length) and sends
    the command and the identifier as two PDUs: ~1.5 ms an answer, most of a 9-match query.
    Here a pending answer's identifier that keeps its encoding in the context's transfer syntax
    (datasets.EncodedDataset, which handlers.on_find yields) goes out as those bytes; another
    data set is encoded here. The command set is written
    directly and goes out with the identifier in one P-DATA-TF PDU when the peer's maximum
    PDU length allows. C-CANCEL is the handler's to check between answers (event.is_cancelled).
    """

    assoc: Association
    dimse: DIMSEServiceProvider
    is_cancelled: Callable[[int], bool]

    def _c_find_scp(self, req: C_FIND, context: PresentationContext) -> None:
        syntax = context.transfer_syntax[0]
        try:
            answers = evt.trigger(self.assoc, evt.EVT_C_FIND, {
                "request": req, "context": context.as_tuple, "_is_cancelled": self.is_cancelled,
            })  # fmt: skip
            for status, identifier in answers or ():
                if not self.assoc.is_established:  # the handler released or aborted
                    return
                code, comment = _status_fields(status)
                if code in (0xFF00, 0xFF01):  # Pending (PS3.4 Table K.4-1): an answer follows
                    if isinstance(identifier, EncodedDataset) and identifier.transfer_syntax == syntax:
                        identifier = identifier.encoded
                    else:
                        identifier = encode(
                            identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
                        )
                    self._respond(req, context, code, identifier=identifier)
                    self._paced()
                    continue
                self._respond(req, context, code, comment=comment)  # cancelled, failed, or done early
                return
        except Exception:
            LOGGER.exception("Exception in handler bound to 'evt.EVT_C_FIND'")
            if self.assoc.is_established:
                self._respond(req, context, 0xC311)  # pynetdicom's "unable to process" for a handler error
            return
        if self.assoc.is_established:
            self._respond(req, context, 0x0000)

    def _paced(self) -> None:
        """Wait while more than QUEUED_PDUS wait for the DUL to send them. Answers are made
        faster than they go out; unpaced, a large result would all be queued before a C-CANCEL
        could stop it (PS3.4 K.4.1.3), and held in memory meanwhile. The DUL reads what the peer
        sends before it sends (EventDrivenDUL._process_recv_primitive)."""
        dul = self.assoc.dul
        while dul.to_provider_queue.qsize() > QUEUED_PDUS and self.assoc.is_established and dul.is_alive():
            time.sleep(PACING_WAIT)

    def _respond(
        self,
        req: C_FIND,
        context: PresentationContext,
        status: int,
        *,
        identifier: bytes | None = None,
        comment: str | None = None,
    ) -> None:
        # Both there in a received request (PS3.7 9.3.2.1) and a negotiated context.
        assert req.MessageID is not None and context.context_id is not None
        command = find_response_command(
            req.AffectedSOPClassUID, req.MessageID, status, data_set=identifier is not None, comment=comment
        )  # fmt: skip
        message_send(self.dimse, context.context_id, command, identifier)


class WorklistFind(ShortFind, BasicWorklistManagementServiceClass):
    """The Modality Worklist C-FIND SCP (PS3.4 K.4.1.3)."""


class QueryFind(ShortFind, QueryRetrieveServiceClass):
    """The Query/Retrieve C-FIND SCP, Patient Root and Study Root (PS3.4 C.4.1.3): its answers
    come as the worklist's do (handlers.on_find yields datasets.EncodedDataset for both); with
    pynetdicom's own SCP a 36-study answer took ~50 ms, most of it in building and sending the
    responses."""


def _status_fields(status: Dataset | int) -> tuple[int, str | None]:
    """(code, Error Comment) from a handler's status: a number, or a Dataset with Status."""
    if isinstance(status, Dataset):
        return int(status.Status), status.get("ErrorComment")
    return int(status), None
