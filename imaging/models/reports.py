"""The vet's written report on a study: drafted, made final (signed), amended after that."""

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from imaging.models.studies import Study


class Report(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINAL = "final", "Final"
        # Changed after it was final: the PMS is told again, as a correction (HL7 OBR-25 "C").
        AMENDED = "amended", "Final, amended"

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="report")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    findings = models.TextField(blank=True)
    conclusion = models.TextField(blank=True, help_text="Impression / diagnosis")
    # 1 when first made final, one more with each amendment.
    version = models.PositiveIntegerField(default=0)
    # Who signed it: the vet's account, and the name as signed (kept if the account changes).
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_by_name = models.CharField(max_length=200, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now, db_index=True)  # REST updated_since

    class Meta:
        ordering = ["-updated", "-id"]

    def __str__(self):
        return f"Report on {self.study} ({self.get_status_display().lower()})"

    @property
    def is_final(self):
        return self.status in (self.Status.FINAL, self.Status.AMENDED)
