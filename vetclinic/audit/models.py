from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.timezone import now


class Channel(models.TextChoices):
    UI = "ui", "Web UI"
    API = "api", "REST API"
    HL7 = "hl7", "HL7"
    DICOM = "dicom", "DICOM"
    SYSTEM = "system", "System"


class AuditEntry(models.Model):
    """One change to a record: who made it, when, through which channel, and what changed."""

    at = models.DateTimeField(default=now, db_index=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Who, when it is not a user: an API client, an HL7 sender, a modality's AE title, a task.
    actor = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=32)
    object_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    # {"field": [old, new], ...} as JSON-safe strings.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            # The history of one record, newest first (patient page, admin filter).
            models.Index(fields=["object_type", "object_id", "-at"]),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.who} {self.action} {self.object_repr}"

    @property
    def who(self):
        if self.user_id:
            return self.user.get_username()
        return self.actor or self.channel
