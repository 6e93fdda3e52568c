"""The archive's Celery tasks (registered as imaging.tasks.<name>, like every imaging task:
imaging/tasks.py is where Celery's autodiscovery finds them)."""

from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from imaging.archive.commitment import (
    commitment_delivery_failed,
    commitment_report,
    commitment_reported,
    commitment_settle,
    commitments_forgotten,
)
from imaging.archive.metadata import metadata_backfill
from imaging.dicom.net.commitment import ReportNotDelivered, report_deliver
from imaging.dicom.net.tls import node_tls_args
from imaging.models import StorageCommitment

# The longest wait between two attempts at a report; the sweep leaves alone what was worked
# on more recently than SWEEP_IDLE, which is longer.
LONGEST_DELAY = 900
SWEEP_IDLE = timedelta(seconds=LONGEST_DELAY + 300)


def retry_delay(attempt: int) -> int:
    """Seconds before attempt ``attempt`` + 1: 1, 2, 4 ... up to LONGEST_DELAY."""
    return int(min(2**attempt, LONGEST_DELAY))


@shared_task(
    name="imaging.tasks.commitment_report", bind=True, max_retries=None,
    autoretry_for=(OperationalError,), retry_backoff=True, retry_backoff_max=LONGEST_DELAY,
)  # fmt: skip
def commitment_report_task(self: Task, commitment_id: int) -> str:
    """Settle a Storage Commitment request and send its report on a new association to the
    node's registered host and port (PS3.4 J.3.3), again and again with a growing delay until
    the node answers it, COMMITMENT_DELIVERY_ATTEMPTS times at most (then the admin shows it
    undeliverable). Waiting for indexing is bounded by COMMITMENT_INDEX_WAIT (commitment_settle)."""
    try:
        commitment = commitment_settle(commitment_id=commitment_id, touch=True)
    except StorageCommitment.DoesNotExist:
        return "gone"
    if commitment is None:  # received objects not indexed yet
        raise self.retry(countdown=retry_delay(self.request.retries))
    if commitment.state != StorageCommitment.State.SETTLED:
        return str(commitment.state)  # reported already, or given up
    node = commitment.node
    if node is None or not node.host or not node.port:
        commitment_delivery_failed(
            commitment_id=commitment_id, final=True,
            error="The node has no host and port to send the report to (set them on its modality record)",
        )  # fmt: skip
        return "undeliverable"
    event_type, information = commitment_report(commitment)
    try:
        report_deliver(
            host=node.host,
            port=node.port,
            called_ae=node.ae_title,
            event_type=event_type,
            information=information,
            tls_args=node_tls_args(node),  # a certificate file that cannot be read: OSError
        )
    except (ReportNotDelivered, OSError, ValueError) as error:
        final = commitment.attempts + 1 >= settings.COMMITMENT_DELIVERY_ATTEMPTS
        commitment_delivery_failed(commitment_id=commitment_id, error=str(error), final=final)
        if final:
            return "undeliverable"
        raise self.retry(countdown=retry_delay(commitment.attempts)) from None
    commitment_reported(commitment_id=commitment_id, via="new association")
    return "reported"


@shared_task(name="imaging.tasks.commitments_sweep")
def commitments_sweep() -> int:
    """Periodic (Celery beat): queue again the reports whose task was lost (the broker was down
    when the listener handed it over, a worker died). Returns how many."""
    forgotten = commitments_forgotten(idle=SWEEP_IDLE)
    for commitment_id in forgotten:
        commitment_report_task.delay(commitment_id)
    return len(forgotten)


@shared_task(
    name="imaging.tasks.metadata_keep", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def metadata_keep_task(instance_ids: list[int]) -> int:
    """Keep the /metadata documents of newly indexed instances (queued by the ingest after its
    commit); an instance whose document is kept already is left alone. Returns how many."""
    return metadata_backfill(instance_ids=instance_ids)
