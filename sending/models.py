"""Sending studies out: where to (destinations), each send and its per-instance results, and the
routing rules that send by themselves once a study is stable."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now


class Destination(models.Model):
    """Where a study may be sent: a registered DICOM node (imaging.Modality: AE title, host, port
    and TLS as C-MOVE uses them) or a DICOMweb STOW-RS endpoint (PS3.18 10.5)."""

    class Kind(models.TextChoices):
        DICOM = "dicom", "DICOM node (C-STORE)"
        STOW = "stow", "DICOMweb (STOW-RS)"

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DICOM)
    node = models.ForeignKey(
        "imaging.Modality", null=True, blank=True, on_delete=models.PROTECT, related_name="destinations",
        help_text="For a DICOM node: the registered node (its AE title, host, port and TLS)",
    )  # fmt: skip
    stow_url = models.URLField(
        "STOW-RS URL",
        max_length=500,
        blank=True,
        help_text="The DICOMweb root, e.g. https://tele.example/dicom-web",
    )
    # Sent as it is in the Authorization header ("Bearer …", "Basic …"). Write-only: the admin
    # never shows it back (admin.py), the API never names it.
    auth_header = models.CharField("Authorization header", max_length=500, blank=True)
    calling_ae_title = models.CharField("our AE title", max_length=16, blank=True, help_text="Empty: VETPACS")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.DICOM and (self.node is None or not (self.node.host and self.node.port)):
            raise ValidationError(
                {"node": "A DICOM destination needs a registered node with a host and a port."}
            )
        if self.kind == self.Kind.STOW and not self.stow_url:
            raise ValidationError({"stow_url": "A DICOMweb destination needs its STOW-RS URL."})


class Send(models.Model):
    """One send of a study (or a series, or chosen instances) to a destination, done by a task."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Waiting to retry"
        DONE = "done", "Sent"
        PARTIAL = "partial", "Sent with failures"
        FAILED = "failed", "Failed"

    FINISHED = (State.DONE, State.PARTIAL, State.FAILED)

    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="sends")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="sends")
    series = models.ForeignKey("imaging.Series", null=True, blank=True, on_delete=models.CASCADE)
    sop_instance_uids = models.JSONField(default=list, blank=True, help_text="Empty: all (of the series)")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    warning = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    # A final failure staff must see on the study page until someone dismisses it.
    alert = models.BooleanField(default=False)
    created = models.DateTimeField(default=now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["study", "alert"], name="send_study_alert")]

    def __str__(self) -> str:
        return f"Send {self.pk} of study {self.study_id} to {self.destination}"

    @property
    def done_count(self) -> int:
        return self.completed + self.warning + self.failed


class SendResult(models.Model):
    """One instance's outcome in a send: the C-STORE-RSP status (PS3.4 B.2.3) or the STOW-RS
    answer's (PS3.18 10.5.3: its Failed SOP Sequence's Failure Reason, else 0x0000)."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        WARNING = "warning", "Warning"
        FAILURE = "failure", "Failure"

    send = models.ForeignKey(Send, on_delete=models.CASCADE, related_name="results")
    sop_instance_uid = models.CharField(max_length=64)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    status = models.PositiveIntegerField(null=True, blank=True, help_text="DICOM status code")
    comment = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["send", "sop_instance_uid"], name="send_result_once")]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid}: {self.outcome}"


class RoutingRule(models.Model):
    """Send every study that matches, once it is stable, to a destination. Empty criteria match
    anything; all given must match. ``teleradiology_only``: only studies whose order is marked
    "send for teleradiology" (imaging.ImagingOrder.teleradiology); a study without an order never
    matches it."""

    name = models.CharField(max_length=64, unique=True)
    station_ae = models.CharField(
        "station AE title", max_length=16, blank=True, help_text="The sender's AE title"
    )
    modality = models.CharField(max_length=16, blank=True, help_text="DICOM Modality of any series: DX, CT…")
    procedure = models.ForeignKey("imaging.Procedure", null=True, blank=True, on_delete=models.CASCADE)
    species = models.ForeignKey("patients.Species", null=True, blank=True, on_delete=models.CASCADE)
    teleradiology_only = models.BooleanField(
        "only orders marked for teleradiology", default=False,
        help_text="Only studies whose order is marked 'send for teleradiology'",
    )  # fmt: skip
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="rules")
    stable_seconds = models.PositiveIntegerField(default=120, help_text="No new instance for this long")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoutingLog(models.Model):
    """A study a rule sent: one row per rule and study, claimed before the send is queued."""

    rule = models.ForeignKey(RoutingRule, on_delete=models.CASCADE, related_name="log")
    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="routings")
    send = models.ForeignKey(Send, null=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["rule", "study"], name="routing_once")]

    def __str__(self) -> str:
        return f"{self.rule} → study {self.study_id}"
