"""An animal's visits to the clinic."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from patients.models.patients import Patient


def staff_name(user):
    """A member of staff as the others know them: full name, else the login."""
    return (user.get_full_name() or user.get_username()) if user is not None else ""


class Visit(models.Model):
    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        ARRIVED = "arrived", "Arrived"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="visits")
    starts_at = models.DateTimeField(default=now)
    reason = models.CharField(max_length=200, blank=True)
    vet = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="visits",
        verbose_name="attending veterinarian",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOOKED)
    # The visit number in an external system (HL7 PV1-19), so A03/A11 can find it.
    external_system = models.CharField(max_length=64, blank=True)
    external_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [
            models.Index(fields=["patient", "-starts_at"]),  # the patient page
            models.Index(fields=["starts_at"]),  # a day's visits
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_system", "external_id"],
                condition=~Q(external_id=""),
                name="visit_external_id_unique",
            )
        ]

    def __str__(self):
        return f"{self.patient.name} {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def vet_name(self):
        """The attending vet's name; empty when none is recorded (HL7 ADT books visits so)."""
        return staff_name(self.vet)
