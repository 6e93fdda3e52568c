"""Storage Commitment requests (PS3.4 J), kept until their report is delivered: a modality
deletes its copies only after a success report, so a report that cannot be sent now is sent
again later (imaging/archive/commitment.py, the task in imaging/archive/tasks.py)."""

from django.db import models
from django.utils.timezone import now


class StorageCommitment(models.Model):
    """One N-ACTION "Request Storage Commitment" (PS3.4 J.3.2) and what we reported for it."""

    class State(models.TextChoices):
        # Some objects were received but are not indexed yet (imaging/archive/commitment.py).
        PENDING = "pending", "Waiting for indexing"
        SETTLED = "settled", "Report ready, not delivered yet"
        REPORTED = "reported", "Reported"
        UNDELIVERABLE = "undeliverable", "Report could not be delivered"

    # PS3.4 J.3.2.1.1: unique to the request; the report carries it back. The same one again from
    # the same node is the same request (a resend), not a new one.
    transaction_uid = models.CharField("Transaction UID", max_length=64)
    calling_ae = models.CharField("requested by", max_length=16)
    # Where a report goes when the request's association has ended (its host and port).
    node = models.ForeignKey(
        "imaging.Modality", null=True, blank=True, on_delete=models.SET_NULL, related_name="commitments"
    )
    # [[SOP Class UID, SOP Instance UID], ...] as requested (Referenced SOP Sequence), and the
    # outcome: committed the same, failed with the Failure Reason (PS3.4 J.3.3.1.4):
    # [[class, instance, reason], ...].
    requested = models.JSONField(default=list)
    committed = models.JSONField(default=list)
    failed = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    requested_at = models.DateTimeField(default=now)
    settled_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    reported_via = models.CharField(max_length=32, blank=True)  # "same association" / "new association"
    attempts = models.PositiveIntegerField(default=0)  # deliveries tried on a new association
    last_error = models.TextField(blank=True)
    # Touched by every attempt of the report's task: the sweep (commitments_sweep) queues again
    # only the requests nothing has worked on for a while (their task was lost).
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["calling_ae", "transaction_uid"], name="commitment_unique_transaction"
            )
        ]
        # The sweep (commitments_sweep) looks for requests not reported yet.
        indexes = [models.Index(fields=["state", "updated"], name="commitment_state")]

    def __str__(self) -> str:
        return f"{self.transaction_uid} from {self.calling_ae}"

    @property
    def event_type(self) -> int:
        """PS3.4 J.3.3.1: 1 all committed, 2 some failed."""
        return 2 if self.failed else 1
