"""One web upload: who sent it, where it was dropped, what came of each file."""

from django.conf import settings
from django.db import models
from django.utils.timezone import now


class Upload(models.Model):
    class Status(models.TextChoices):
        # Received: every file is kept or refused; linking waits for the ingest worker to index
        # them. Done: the studies are linked (or left for reconciliation).
        LINKING = "linking", "Linking the studies"
        DONE = "done", "Done"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # An API client's name, or the staff member's user name: who, for the page and the audit log.
    sender = models.CharField(max_length=200, blank=True)
    # Where it was dropped: its studies are linked there. Neither: they go through the ingest's
    # own matching (order, Patient ID), and what that cannot place waits in reconciliation.
    patient = models.ForeignKey("patients.Patient", null=True, blank=True, on_delete=models.SET_NULL)
    order = models.ForeignKey("imaging.ImagingOrder", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LINKING)
    files_received = models.PositiveIntegerField(default=0)  # files that came (a ZIP's members too)
    bytes_received = models.BigIntegerField(default=0)
    # [{"name", "sop_instance_uid", "study_instance_uid"}] for each file stored.
    stored = models.JSONField(default=list)
    # [{"name", "reason"}] for each file refused: nothing of it was kept.
    refused = models.JSONField(default=list)
    # [{"study_instance_uid", "study_id", "patient", "linked", "problem"}] once linking is done.
    studies = models.JSONField(default=list)
    created = models.DateTimeField(default=now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"upload {self.pk} ({len(self.stored)} stored, {len(self.refused)} refused)"
