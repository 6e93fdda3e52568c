"""Storage Commitment Push Model, the SCP's side (PS3.4 J.3): a modality asks whether the objects
it sent are safely kept before it deletes its copies; we answer from what is durably stored AND
indexed, never from what we merely hope for.

``commitment_request`` records a request (the N-ACTION, answered at once); ``commitment_settle``
decides each object once it can; the report (the N-EVENT-REPORT) is built from the settled row
(``report_event_information``) and delivered by the listener on the request's association, or
by the task on a new one (imaging/dicom/net/commitment.py, imaging/archive/tasks.py), which
record the outcome here (``commitment_reported``, ``commitment_delivery_failed``).

When is an object committed? An object the listener acknowledged is durable in storage at once,
but it is indexed later, by the worker: imaging/ingest/receive.py writes it (fsynced, or an S3
PUT) and only then answers success, touching no database (a speed rule of the C-STORE path);
imaging/ingest/queueing.py batches its indexing message (50 objects, half a second, or the end
of the association) into a Celery task; a broker that is down leaves it to the periodic sweep
(imaging/ingest/index.py storage_sweep, a minute old at least). So at the N-ACTION an object
sent a moment before is often not indexed yet, and after a broker outage may not be for
minutes. Reporting it failed then would be wrong, and a modality that trusts the report would
send it again for nothing, or worse, keep asking. Waiting a fixed time for the index alone would
be wrong too: an object never received would only be reported failed after that wait.

So each object is looked for in two places. In the index (imaging.Instance): indexed under the
requested SOP Class, it is committed; under another, it is a class/instance conflict (0119H).
Not indexed: storage is the durable record of what was received (every key carries its SOP
Instance UID, imaging/ingest/storage.py instance_key), listed over the sweep's days.
Received and not indexed yet, it is waited for (on the association for
COMMITMENT_ASSOCIATION_WAIT, then by the task, until COMMITMENT_INDEX_WAIT after the request,
past which it is reported failed with a processing failure, 0110H). Received nowhere, it fails
at once with no such object instance (0112H): a C-STORE answered success was written before
the answer, so nothing that was acknowledged can still turn up.
"""

import enum
import logging
from datetime import timedelta
from typing import NamedTuple

from celery import current_app
from django.conf import settings
from django.db.models import Q
from django.utils.timezone import now
from pydicom.dataset import Dataset

from imaging.dicom.records.commitment import (
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    REQUEST_STORAGE_COMMITMENT,
    STORAGE_COMMITMENT_INSTANCE,
    Reference,
    RequestInvalid,
    report_event_information,
    request_read,
)
from imaging.ingest import storage
from imaging.models import Instance, Modality, StorageCommitment
from vetclinic.audit.services import Actor, audit_record
from vetclinic.transactions import service_atomic

log = logging.getLogger(__name__)


class Refusal(enum.Enum):
    """Why a request is refused (the N-ACTION's status, PS3.7 10.1.4.1.10, mapped by the handler)."""

    NO_SUCH_ACTION = "no such action"  # an Action Type ID other than 1
    NO_SUCH_INSTANCE = "no such instance"  # not the well-known instance (PS3.4 J.3.5)
    MISSING_ATTRIBUTE = "missing attribute"  # Transaction UID, Referenced SOP Sequence ...
    INVALID_VALUE = "invalid value"  # not a UID, undecodable


class CommitmentRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@service_atomic
def commitment_request(
    *,
    actor: Actor,
    calling_ae: str,
    action_type_id: int | None,
    requested_instance_uid: str,
    information: Dataset | None,
    savepoints: bool = True,
) -> StorageCommitment:
    """Record a Request Storage Commitment (PS3.4 J.3.2); the report follows when it is settled.
    The same Transaction UID again from the same node is the request sent again: it is settled
    and reported afresh (the first report may never have arrived)."""
    if action_type_id != REQUEST_STORAGE_COMMITMENT:
        raise CommitmentRefused(Refusal.NO_SUCH_ACTION, f"Action Type ID {action_type_id} is not 1")
    if requested_instance_uid != STORAGE_COMMITMENT_INSTANCE:
        raise CommitmentRefused(
            Refusal.NO_SUCH_INSTANCE, f"Requested SOP Instance must be {STORAGE_COMMITMENT_INSTANCE}"
        )
    try:
        transaction_uid, references = request_read(information)
    except RequestInvalid as invalid:
        reason = Refusal.MISSING_ATTRIBUTE if invalid.missing else Refusal.INVALID_VALUE
        raise CommitmentRefused(reason, invalid.detail) from None
    fresh = {
        "node": Modality.objects.filter(ae_title=calling_ae).first(),
        "requested": [list(reference) for reference in references],
        "committed": [], "failed": [], "state": StorageCommitment.State.PENDING, "requested_at": now(),
        "settled_at": None, "reported_at": None, "reported_via": "", "attempts": 0, "last_error": "",
    }  # fmt: skip
    commitment, created = StorageCommitment.objects.update_or_create(
        calling_ae=calling_ae, transaction_uid=transaction_uid, defaults=fresh
    )
    audit_record(
        actor=actor, instance=commitment, action="commitment_request" if created else "commitment_request_again",
        changes={"instances": [len(references)]},
    )  # fmt: skip
    return commitment


class Outcome(NamedTuple):
    committed: list[list[str]]  # [class, instance]
    failed: list[list[str | int]]  # [class, instance, Failure Reason]
    waiting: list[list[str]]  # received, not indexed yet


def commitment_outcome(requested: list[Reference] | list[list[str]], *, final: bool) -> Outcome:
    """Each requested object's state now (the module's docstring says why so). ``final``: an
    object still waiting for its indexing is failed (0110H) instead."""
    uids = {str(instance) for _sop_class, instance in requested}
    indexed = dict(
        Instance.objects.filter(sop_instance_uid__in=uids).values_list("sop_instance_uid", "sop_class_uid")
    )
    received = objects_received(uids - indexed.keys())
    outcome = Outcome([], [], [])
    for sop_class, instance in requested:
        if instance in indexed:
            if indexed[instance] == sop_class:
                outcome.committed.append([sop_class, instance])
            else:
                outcome.failed.append([sop_class, instance, CLASS_INSTANCE_CONFLICT])
        elif instance not in received:
            outcome.failed.append([sop_class, instance, NO_SUCH_OBJECT_INSTANCE])
        elif final:
            outcome.failed.append([sop_class, instance, PROCESSING_FAILURE])
        else:
            outcome.waiting.append([sop_class, instance])
    return outcome


def objects_received(uids: set[str]) -> set[str]:
    """Which of ``uids`` are in storage (received and durable), from the keys of the sweep's
    days (settings.STORAGE_SWEEP_DAYS: what is older and not indexed is not going to be). A
    listing, not a lookup (a key ends in a random part): only for the few objects the index does
    not have yet."""
    found: set[str] = set()
    if not uids:
        return found
    for prefix in storage.day_prefixes(max(settings.STORAGE_SWEEP_DAYS, 1)):
        if storage.folder_exists(prefix):
            found.update(
                uid for uid in map(storage.key_sop_instance_uid, storage.keys_under(prefix)) if uid in uids
            )
    return found


@service_atomic
def commitment_settle(
    *, commitment_id: int, touch: bool = False, savepoints: bool = True
) -> StorageCommitment | None:
    """Decide every object of a pending request, if each can be decided now, and keep the
    outcome: returns the request (settled, or already reported), or None while something
    received is still waiting for its indexing (until COMMITMENT_INDEX_WAIT after the request).
    ``touch``: mark it as worked on even when it waits (the task's attempts, for the sweep)."""
    commitment = StorageCommitment.objects.select_for_update().get(pk=commitment_id)
    if commitment.state != StorageCommitment.State.PENDING:
        return commitment
    final = now() - commitment.requested_at >= timedelta(seconds=settings.COMMITMENT_INDEX_WAIT)
    outcome = commitment_outcome(commitment.requested, final=final)
    if outcome.waiting:
        if touch:
            commitment.save(update_fields=["updated"])
        return None
    commitment.committed, commitment.failed = outcome.committed, outcome.failed
    commitment.state, commitment.settled_at = StorageCommitment.State.SETTLED, now()
    commitment.save(update_fields=["committed", "failed", "state", "settled_at", "updated"])
    return commitment


def commitment_report(commitment: StorageCommitment) -> tuple[int, Dataset]:
    """The N-EVENT-REPORT of a settled request: its Event Type ID and Event Information."""
    information = report_event_information(
        transaction_uid=commitment.transaction_uid, committed=commitment.committed, failed=commitment.failed,
        retrieve_ae_title=settings.DICOM_AE_TITLE,
    )  # fmt: skip
    return commitment.event_type, information


@service_atomic
def commitment_reported(*, commitment_id: int, via: str, savepoints: bool = True) -> None:
    """The report was delivered (the peer answered the N-EVENT-REPORT)."""
    StorageCommitment.objects.filter(pk=commitment_id).update(
        state=StorageCommitment.State.REPORTED, reported_at=now(), reported_via=via, updated=now()
    )


@service_atomic
def commitment_delivery_failed(
    *, commitment_id: int, error: str, final: bool, savepoints: bool = True
) -> None:
    """A delivery on a new association failed; ``final``: no more attempts (an admin sees it)."""
    commitment = StorageCommitment.objects.select_for_update().get(pk=commitment_id)
    commitment.attempts += 1
    commitment.last_error = error[:2000]
    if final:
        commitment.state = StorageCommitment.State.UNDELIVERABLE
    commitment.save(update_fields=["attempts", "last_error", "state", "updated"])
    log.warning(
        "storage commitment %s: report not delivered%s: %s", commitment, " (given up)" if final else "", error
    )


def commitments_forgotten(*, idle: timedelta) -> list[int]:
    """Requests not reported yet that nothing has worked on for ``idle``: their task was lost."""
    open_states = Q(state=StorageCommitment.State.PENDING) | Q(state=StorageCommitment.State.SETTLED)
    return list(
        StorageCommitment.objects.filter(open_states, updated__lt=now() - idle).values_list("pk", flat=True)
    )


def commitment_report_queue(commitment_id: int) -> None:
    """Hand the report to the task (imaging/archive/tasks.py: on a new association, retried).
    A broker that is down loses nothing: the request is kept, and the sweep queues it again."""
    try:
        # By name: tasks import services, never the reverse (STYLE.md).
        current_app.send_task("imaging.tasks.commitment_report", args=[commitment_id], retry=False)
    except Exception:
        log.exception("storage commitment %s: could not queue its report; the sweep will", commitment_id)
