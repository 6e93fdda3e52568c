"""What the clinic asks the modalities to do: the procedure catalog, imaging orders (a requested
procedure with its one scheduled procedure step), and the procedure steps the modalities report
back over MPPS."""

from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from imaging.models.studies import Modality
from patients.models import Patient, Species, Visit


class Procedure(models.Model):
    """An exam the clinic offers, as the modality sees it in the worklist."""

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64)  # Requested Procedure Description (LO)
    modality_type = models.CharField(max_length=16, help_text="DICOM Modality: DX, CR, US, CT, MR…")
    body_part = models.CharField(max_length=16, blank=True, help_text="DICOM Body Part Examined (CS)")
    duration_minutes = models.PositiveSmallIntegerField(default=15)
    # Empty: any species.
    species = models.ManyToManyField(Species, blank=True, related_name="procedures")
    # Scheduled Protocol Code Sequence (0040,0008): what the modality should set itself up for.
    protocol_code = models.CharField(max_length=16)
    protocol_scheme = models.CharField(max_length=16, default="99VETPACS")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["modality_type", "name"]

    def __str__(self):
        return f"{self.name} ({self.modality_type})"


class ImagingOrder(models.Model):
    """A requested procedure and its scheduled procedure step (PS3.4 Annex K: one each)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        ARRIVED = "arrived", "Arrived"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        DISCONTINUED = "discontinued", "Discontinued"
        CANCELLED = "cancelled", "Cancelled"
        REPORTED = "reported", "Reported"

    # Offered in the worklist unless a query asks for a status (the modality has yet to do them).
    WORKLIST_STATUSES = (Status.SCHEDULED, Status.ARRIVED)
    # Whose details (reason, priority, teleradiology, ...) may still change: the exam is ahead or
    # under way. A completed, reported or cancelled order is the record of what was asked and done.
    EDITABLE_STATUSES = (Status.SCHEDULED, Status.ARRIVED, Status.IN_PROGRESS, Status.DISCONTINUED)
    # Which status may follow which; imaging/orders/services.py enforces it.
    TRANSITIONS: dict[str, set[str]] = {
        Status.SCHEDULED: {
            Status.ARRIVED,
            Status.IN_PROGRESS,
            Status.COMPLETED,
            Status.CANCELLED,
            Status.DISCONTINUED,
        },
        Status.ARRIVED: {
            Status.SCHEDULED,
            Status.IN_PROGRESS,
            Status.COMPLETED,
            Status.CANCELLED,
            Status.DISCONTINUED,
        },
        Status.IN_PROGRESS: {Status.COMPLETED, Status.DISCONTINUED},
        Status.COMPLETED: {Status.REPORTED, Status.IN_PROGRESS},
        Status.DISCONTINUED: {Status.SCHEDULED, Status.CANCELLED, Status.IN_PROGRESS},
        Status.REPORTED: set(),
        Status.CANCELLED: set(),
    }

    class Priority(models.TextChoices):
        # Requested Procedure Priority (0040,1003) values.
        ROUTINE = "ROUTINE", "Routine"
        HIGH = "HIGH", "Urgent"
        STAT = "STAT", "Emergency (STAT)"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="orders")
    visit = models.ForeignKey(Visit, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    procedure = models.ForeignKey(Procedure, on_delete=models.PROTECT, related_name="orders")
    station = models.ForeignKey(
        Modality, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders",
        help_text="The modality that will do it (Scheduled Station AE Title)",
    )  # fmt: skip
    modality_type = models.CharField(max_length=16)
    scheduled_start = models.DateTimeField()
    duration_minutes = models.PositiveSmallIntegerField()
    reason = models.TextField("reason / clinical history", blank=True)
    referring_vet = models.CharField(max_length=64, blank=True)
    performing_vet = models.CharField("performing vet / technician", max_length=64, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)
    weight_kg = models.DecimalField(
        "weight on the day (kg)", max_digits=7, decimal_places=3, null=True, blank=True
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    status_changed = models.DateTimeField(default=now)
    # Null only between the insert and the numbers being derived from the primary key.
    accession_number = models.CharField(max_length=16, unique=True, null=True)  # noqa: DJ001 (SH)
    requested_procedure_id = models.CharField("requested procedure ID", max_length=16, blank=True)  # SH
    scheduled_step_id = models.CharField("scheduled procedure step ID", max_length=16, blank=True)  # SH
    study_instance_uid = models.CharField(max_length=64, unique=True)
    # The practice-management system's own numbers for the order (HL7 ORC-2 / ORC-3).
    placer_order_number = models.CharField(max_length=64, blank=True)
    filler_order_number = models.CharField(max_length=64, blank=True)
    # The vet wants the images read by a teleradiology service: routing rules may send only
    # such orders' studies (sending.models.RoutingRule.teleradiology_only). DICOM and HL7 v2 have
    # no attribute for it (an ORM has no such field), so it is set in the UI or the REST API.
    teleradiology = models.BooleanField("send for teleradiology", default=False)
    images_received_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["scheduled_start", "id"]
        indexes = [
            # The worklist (imaging/dicom/records/matching.py): only open orders, by start time.
            models.Index(
                fields=["scheduled_start"],
                name="order_worklist",
                condition=Q(status__in=["scheduled", "arrived"]),
            ),  # fmt: skip
            # A station's worklist and the day board, whatever the status.
            models.Index(fields=["station", "scheduled_start"], name="order_station_start"),
            models.Index(fields=["scheduled_start", "status"], name="order_day"),
            models.Index(fields=["patient", "-scheduled_start"], name="order_patient"),
        ]

    def __str__(self):
        return f"{self.accession_number or 'new order'}: {self.procedure.name}"

    @property
    def scheduled_end(self) -> datetime:
        return self.scheduled_start + timedelta(minutes=self.duration_minutes)

    def can_become(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.status]

    def details_editable(self) -> bool:
        return self.status in self.EDITABLE_STATUSES


class OrderStatusChange(models.Model):
    """The order's status history, shown on its page (the audit log keeps the rest)."""

    order = models.ForeignKey(ImagingOrder, on_delete=models.CASCADE, related_name="status_changes")
    old = models.CharField(max_length=16, blank=True)
    new = models.CharField(max_length=16)
    at = models.DateTimeField(default=now)
    channel = models.CharField(max_length=16)
    by = models.CharField(max_length=200, blank=True)  # a user, an AE title, a PMS
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.old or '—'} → {self.new}"


class PerformedProcedureStep(models.Model):
    """A Modality Performed Procedure Step (PS3.4 Annex F) as the modality reported it."""

    class Status(models.TextChoices):
        # Performed Procedure Step Status (0040,0252)
        IN_PROGRESS = "IN PROGRESS", "In progress"
        COMPLETED = "COMPLETED", "Completed"
        DISCONTINUED = "DISCONTINUED", "Discontinued"

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    order = models.ForeignKey(
        ImagingOrder, null=True, blank=True, on_delete=models.SET_NULL, related_name="performed_steps"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    station_ae = models.CharField(max_length=16, blank=True)  # Performed Station AE Title
    modality = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Performed Series Sequence: [{"series_instance_uid", "description", "images"}]
    performed_series = models.JSONField(default=list, blank=True)
    # The attributes as last received (DICOM JSON, PS3.18 F.2), for whoever has to look.
    attributes = models.JSONField(default=dict, blank=True)
    received_from = models.CharField(max_length=16, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"MPPS {self.sop_instance_uid} ({self.status})"
