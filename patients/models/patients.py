"""The animals: their record, their ids in other systems, who owns them, and their weights."""

from datetime import date
from decimal import Decimal

from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.utils.timezone import now

from patients import names
from patients.models.owners import ExternalId, Owner
from patients.models.vocabulary import Breed, Species
from vetclinic import clock


class Patient(models.Model):
    """An animal. Its ``patient_id`` is the DICOM Patient ID (0010,0020)."""

    class Sex(models.TextChoices):
        # DICOM Patient's Sex (0010,0040) values.
        MALE = "M", "Male"
        FEMALE = "F", "Female"
        UNKNOWN = "O", "Unknown"

    class Neutered(models.TextChoices):
        # DICOM Patient Sex Neutered (0010,2203); empty means unknown.
        ALTERED = "ALTERED", "Neutered"
        UNALTERED = "UNALTERED", "Entire"
        UNKNOWN = "", "Unknown"

    # Null only between the insert and the id being derived from the primary key.
    patient_id = models.CharField("patient ID", max_length=64, unique=True, null=True)  # noqa: DJ001
    name = models.CharField(max_length=64)
    species = models.ForeignKey(Species, on_delete=models.PROTECT, related_name="patients")
    breed = models.ForeignKey(Breed, null=True, blank=True, on_delete=models.PROTECT, related_name="patients")
    breed_text = models.CharField(
        "breed (free text)", max_length=64, blank=True, help_text="When no coded breed fits"
    )
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    neutered = models.CharField(max_length=9, choices=Neutered.choices, default=Neutered.UNKNOWN, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    birth_date_estimated = models.BooleanField(default=False)
    colour = models.CharField("colour / markings", max_length=128, blank=True)
    microchip = models.CharField(max_length=32, blank=True)
    deceased = models.BooleanField(default=False)
    deceased_on = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    owners = models.ManyToManyField(Owner, through="Ownership", related_name="patients")
    # A merged patient is kept as an alias of the one it was merged into.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="aliases"
    )
    # Patient's Name as the worklist matches it: OWNERFAMILY^ANIMAL in capitals, since person
    # names match case-insensitively (PS3.4 C.2.2.2.1). search_terms_refresh keeps it current.
    dicom_name_key = models.CharField(max_length=130, blank=True, db_index=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        permissions = [("merge_patient", "Can merge two patients")]
        constraints = [
            # One living record per microchip; aliases keep theirs for the history.
            models.UniqueConstraint(
                fields=["microchip"],
                condition=~Q(microchip="") & Q(merged_into__isnull=True),
                name="patient_microchip_unique",
                violation_error_message="Another animal already has this microchip number.",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.patient_id})"

    @property
    def primary_owner(self) -> Owner | None:
        for ownership in self.ownerships.all():
            if ownership.is_primary:
                return ownership.owner
        return None

    @property
    def dicom_name(self) -> str:
        """``OwnerFamily^AnimalName``: Patient's Name for an animal (PS3.3 C.7.1.1.1.1)."""
        owner = self.primary_owner
        return names.patient_name(owner.dicom_family_name if owner else "", self.name)

    @property
    def breed_display(self):
        return self.breed.name if self.breed_id else self.breed_text

    @property
    def age_display(self):
        """'3 y', '7 m' or '' — prefixed with ~ when the birth date is an estimate."""
        if not self.birth_date:
            return ""
        end = self.deceased_on or clock.today()
        months = (end.year - self.birth_date.year) * 12 + end.month - self.birth_date.month
        months -= end.day < self.birth_date.day
        text = f"{months // 12} y" if months >= 24 else f"{max(months, 0)} m"
        return ("~" if self.birth_date_estimated else "") + text

    @property
    def current_weight(self) -> Decimal | None:
        """The newest measurement's kg, or None (WeightRecord.NEWEST_FIRST)."""
        if "weights" in getattr(self, "_prefetched_objects_cache", {}):  # a list of many animals
            newest = max(self.weights.all(), key=WeightRecord.newness, default=None)
        else:
            newest = self.weights.order_by(*WeightRecord.NEWEST_FIRST).first()
        return newest.kg if newest else None


class PatientExternalId(ExternalId):
    """The animal's id in an external system (the PMS's patient number, PID-3 with authority)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="external_ids")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "value"], name="patient_external_id_unique")]


class Ownership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        CO_OWNER = "co-owner", "Co-owner"
        AGENT = "agent", "Agent"
        GUARANTOR = "guarantor", "Guarantor"
        BREEDER = "breeder", "Breeder"
        KEEPER = "keeper", "Keeper"

    owner = models.ForeignKey(Owner, on_delete=models.CASCADE, related_name="ownerships")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="ownerships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OWNER)
    # The primary owner is the DICOM Responsible Person (0010,2297).
    is_primary = models.BooleanField(default=False)

    class Meta:
        ordering = ["-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "patient"], name="ownership_unique"),
            models.UniqueConstraint(
                fields=["patient"], condition=Q(is_primary=True), name="ownership_one_primary"
            ),
        ]

    def __str__(self):
        return f"{self.owner} — {self.get_role_display()} of {self.patient.name}"


# The animal's current weight is its newest measurement: of the latest day measured, and of two
# on one day (an order's weight on the day and another), the one recorded last. Everything that
# shows a current weight reads it by this order: Patient.current_weight, the REST rows and the
# worklist (WeightRecord.newest_kg in a query), so they agree.
NEWEST_WEIGHT_FIRST = ("-measured_on", "-id")


class WeightRecord(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="weights")
    kg = models.DecimalField(max_digits=7, decimal_places=3)
    measured_on = models.DateField(default=date.today)
    recorded_at = models.DateTimeField(default=now)

    NEWEST_FIRST = NEWEST_WEIGHT_FIRST

    class Meta:
        ordering = [*NEWEST_WEIGHT_FIRST]
        indexes = [models.Index(fields=["patient", "-measured_on"])]  # WeightRecord.newest_kg

    def __str__(self):
        return f"{self.kg_display} kg on {self.measured_on}"

    @property
    def kg_display(self):
        """31.4 rather than 31.400, 520 rather than 5.2E+2."""
        return format(self.kg.normalize(), "f")

    @staticmethod
    def newness(record):
        """NEWEST_FIRST as a sort key of records in hand (greater is newer)."""
        return (record.measured_on, record.id)

    @classmethod
    def newest_kg(cls, patient: OuterRef) -> Subquery:
        """The current weight as an expression, for ``annotate``: ``patient`` is the outer
        query's patient id (``OuterRef("pk")`` from patients, ``OuterRef("patient_id")`` from
        orders). One subquery per row, on the (patient, measured_on) index."""
        return Subquery(cls.objects.filter(patient=patient).order_by(*NEWEST_WEIGHT_FIRST).values("kg")[:1])
