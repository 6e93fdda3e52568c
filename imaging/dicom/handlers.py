"""One function per DIMSE event: unpack, call a service, map the result to a status."""
import logging
import time
from io import BytesIO

from django.db import close_old_connections, connections
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import evt

from imaging.dicom.status import SUCCESS
from imaging.selectors import association_allowed
from imaging.services import IngestBatch, StoreRefused, instance_receive

log = logging.getLogger("imaging.dicom")


def on_requested(event):
    """Refuse unregistered callers before anything else happens (A-ASSOCIATE-RJ)."""
    requestor = event.assoc.requestor
    calling_ae = requestor.primitive.calling_ae_title.strip()  # .ae_title is set only later
    close_old_connections()
    if not association_allowed(calling_ae=calling_ae, host=requestor.address):
        log.warning("refused association from %s at %s: not a registered modality", calling_ae, requestor.address)
        # PS3.8 9.3.4: rejected-permanent (1), service-user (1), calling AE title not recognized (3)
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)
        _until_sent(event.assoc)


def _until_sent(assoc, timeout=2.0):
    """Wait until the reactor has sent the rejection (state Sta13, PS3.8 9.2): pynetdicom closes
    the socket as soon as this handler returns, and the caller would see an abort instead."""
    deadline = time.monotonic() + timeout
    while assoc.dul.state_machine.current_state != "Sta13" and time.monotonic() < deadline:
        time.sleep(0.001)


def on_established(event):
    requestor = event.assoc.requestor
    log.info("association from %s at %s:%s", requestor.ae_title.strip(), requestor.address, requestor.port)


def on_ended(event):
    """Released or aborted: queue the association's last indexing messages now, not when
    the peer gets round to closing the connection."""
    batch = getattr(event.assoc, "ingest_batch", None)
    if batch is not None:
        batch.flush()


def on_closed(event):
    on_ended(event)
    # The association's thread ends here; its database connection must not outlive it.
    connections.close_all()


def on_store(event):
    """C-STORE: keep the bytes as they came, then answer (PS3.4 B.2.3 statuses)."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    if not hasattr(event.assoc, "ingest_batch"):
        event.assoc.ingest_batch = IngestBatch()  # one per association, flushed when it closes
    try:
        instance_receive(
            data=event.request.DataSet.getvalue(),
            file_meta_bytes=_file_meta_bytes(event, calling_ae),
            transfer_syntax=event.context.transfer_syntax,
            sop_class_uid=event.request.AffectedSOPClassUID,
            sop_instance_uid=event.request.AffectedSOPInstanceUID,
            calling_ae=calling_ae,
            batch=event.assoc.ingest_batch,
        )
    except StoreRefused as refused:
        log.warning("C-STORE %s from %s refused: %s", event.request.AffectedSOPInstanceUID, calling_ae, refused.comment)
        return _status(refused.status, refused.comment)
    return SUCCESS


def _file_meta_bytes(event, calling_ae):
    """Preamble, 'DICM' and our File Meta Information (PS3.10 7.1) for the received data set."""
    out = BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    meta = event.file_meta
    meta.SourceApplicationEntityTitle = calling_ae
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue()


def _status(code, comment):
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment
    return status


HANDLERS = [
    (evt.EVT_REQUESTED, on_requested),
    (evt.EVT_ESTABLISHED, on_established),
    (evt.EVT_RELEASED, on_ended),
    (evt.EVT_ABORTED, on_ended),
    (evt.EVT_CONN_CLOSE, on_closed),
    (evt.EVT_C_STORE, on_store),
]
