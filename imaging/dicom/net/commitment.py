"""Storage Commitment reports on the wire (PS3.4 J.3.3): the N-EVENT-REPORT on the request's own
association when it is still open, else on a new association from us to the node.

On the request's association (``report_follow``, called by handlers.on_n_action): the report
must follow the N-ACTION's answer, and pynetdicom sends that answer only after the handler
returns (service_class._n_action_scp); an N-EVENT-REPORT sent from the handler would reach the
modality first, where a requestor waiting for its N-ACTION-RSP (pynetdicom's own send_n_action)
takes it for the answer. So a thread of the request's own waits until the answer's last PDU is
on the wire (pynetdicom's EVT_PDU_SENT, bound for that moment only), then for the objects'
indexing (imaging/archive/commitment.py commitment_settle, at most COMMITMENT_ASSOCIATION_WAIT),
then sends the report with pynetdicom's send_n_event_report, which pauses the association's
own loop while it waits for the answer. If the modality released the association first, or the
wait ran out, or the report was not answered with success, the task (imaging/archive/tasks.py)
takes over and uses ``report_deliver``.

On a new association (``report_deliver``): to the node's registered host and port, never an
address from the request, over TLS if the node is registered with it (tls.py). We are its
requestor but the SOP Class's SCP, so we propose the SCP role for it (SCU role 0, SCP role 1:
PS3.4 J.3.3.1.2 note, PS3.7 D.3.3.4); the modality, the SOP Class's SCU, accepts the
N-EVENT-REPORT.
"""

import logging
import ssl
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.pdu import P_DATA_TF

from imaging.archive.commitment import (
    commitment_report,
    commitment_report_queue,
    commitment_reported,
    commitment_settle,
)
from imaging.dicom.net.tls import handshake_failure
from imaging.dicom.records.commitment import STORAGE_COMMITMENT_INSTANCE, STORAGE_COMMITMENT_PUSH_MODEL
from imaging.models import StorageCommitment

log = logging.getLogger("imaging.dicom")

# How often the index (and, for what it lacks, storage's listing) is looked at while objects
# wait for their indexing: it is another process's (the worker's) to fill, so there is nothing
# to wait on but the clock. Soon at first (an association's batch is indexed within a second or
# two), then less often, so that a long wait does not list a busy day's folder four times a second.
SETTLE_POLL, SETTLE_POLL_LONGEST = 0.25, 2.0
# How long the answer to the N-ACTION may take to go out (it is sent right after the handler).
ANSWER_WAIT = 30.0
TIMEOUT = 30  # ACSE, DIMSE and network timeouts of a report on a new association


class ReportNotDelivered(Exception):
    """The report did not reach the node, or it did not answer success: the message says why."""


def report_follow(assoc: Association, *, commitment_id: int, context_id: int) -> None:
    """Send the report of ``commitment_id`` on ``assoc`` once its N-ACTION is answered and it is
    settled (the module's docstring); else leave it to the task. Returns at once."""
    answered = threading.Event()

    def answer_sent(event: Event) -> None:
        # The N-ACTION-RSP has no data set here: its command's last fragment ends it (PS3.7 E.2:
        # message control header bit 0 command, bit 1 last fragment).
        pdu = getattr(event, "pdu", None)  # EVT_PDU_SENT's (pynetdicom sets it from the trigger's kwargs)
        if isinstance(pdu, P_DATA_TF) and any(
            item.presentation_context_id == context_id and item.presentation_data_value
            and item.presentation_data_value[0] & 0x03 == 0x03
            for item in pdu.presentation_data_value_items
        ):  # fmt: skip
            answered.set()

    assoc.bind(evt.EVT_PDU_SENT, answer_sent)
    threading.Thread(
        target=_follow, args=(assoc, commitment_id, answered, answer_sent), name=f"commitment-{commitment_id}",
        daemon=True,
    ).start()  # fmt: skip


def _follow(
    assoc: Association, commitment_id: int, answered: threading.Event, watcher: Callable[[Event], None]
) -> None:
    try:
        sent = answered.wait(ANSWER_WAIT)
        assoc.unbind(evt.EVT_PDU_SENT, watcher)
        commitment = _settled(assoc, commitment_id) if sent else None
        if commitment is not None and commitment.state == StorageCommitment.State.SETTLED:
            if _report_on(assoc, commitment):
                return
        elif commitment is not None:  # reported already (a resent request's first report)
            return
        commitment_report_queue(commitment_id)
    except Exception:
        log.exception("storage commitment %s: the report goes on a new association", commitment_id)
        commitment_report_queue(commitment_id)
    finally:
        connections.close_all()  # this thread's database connection (Django keeps one a thread)


def _settled(assoc: Association, commitment_id: int) -> StorageCommitment | None:
    """The request once settled; None if the association ends or the wait runs out first."""
    deadline = time.monotonic() + settings.COMMITMENT_ASSOCIATION_WAIT
    poll = SETTLE_POLL
    while True:
        commitment = commitment_settle(commitment_id=commitment_id)
        if commitment is not None:
            return commitment
        if not assoc.is_established or time.monotonic() >= deadline:
            return None
        time.sleep(poll)
        poll = min(poll * 2, SETTLE_POLL_LONGEST)


def _report_on(assoc: Association, commitment: StorageCommitment) -> bool:
    """Send the report on the request's association; whether the modality took it."""
    if not assoc.is_established:
        return False
    event_type, information = commitment_report(commitment)
    try:
        status, _reply = assoc.send_n_event_report(
            information, event_type, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE
        )
    except (RuntimeError, ValueError) as error:  # ended meanwhile; no such context
        log.warning("storage commitment %s: not reported on its association: %s", commitment, error)
        return False
    code = status.get("Status")
    if code != 0x0000:
        log.warning("storage commitment %s: the report on its association was answered %s", commitment,
                    "nothing" if code is None else f"0x{code:04X}")  # fmt: skip
        return False
    commitment_reported(commitment_id=commitment.pk, via="same association")
    log.info("storage commitment %s reported on its association (event type %d)", commitment, event_type)
    return True


def report_deliver(
    *,
    host: str,
    port: int,
    called_ae: str,
    event_type: int,
    information: Dataset,
    tls_args: tuple[ssl.SSLContext, str] | None = None,
) -> None:
    """Send a report on a new association to ``called_ae`` at ``host``:``port``, over TLS with
    ``tls_args`` (tls.node_tls_args); raises ReportNotDelivered unless the node answers it with
    success."""
    ae = AE(ae_title=settings.DICOM_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = TIMEOUT
    ae.add_requested_context(STORAGE_COMMITMENT_PUSH_MODEL, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    role = build_role(STORAGE_COMMITMENT_PUSH_MODEL, scu_role=False, scp_role=True)
    assoc = ae.associate(host, port, ae_title=called_ae, ext_neg=[role], tls_args=tls_args)
    tls_failure = handshake_failure(tls_args[0]) if tls_args else None
    if not assoc.is_established and tls_failure:
        raise ReportNotDelivered(f"TLS with {called_ae} at {host}:{port} failed: {tls_failure}")
    if not assoc.is_established:
        how = "rejected" if assoc.is_rejected else "could not be made"
        raise ReportNotDelivered(f"the association with {called_ae} at {host}:{port} {how}")
    try:
        status, _reply = assoc.send_n_event_report(
            information, event_type, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE
        )
    except (RuntimeError, ValueError) as error:
        raise ReportNotDelivered(f"{called_ae} at {host}:{port}: {error}") from None
    finally:
        if assoc.is_established:
            assoc.release()
    code = status.get("Status")
    if code != 0x0000:
        raise ReportNotDelivered(f"{called_ae} answered " + ("nothing" if code is None else f"0x{code:04X}"))
