"""The clinic's record: owners, animals, visits, and the species/breed vocabulary."""

from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import Q, Subquery
from django.utils.timezone import now

from patients import names
from vetclinic import clock


class Species(models.Model):
    """A species as DICOM codes it (PS3.16 CID 7454, SNOMED CT), or a clinic's own entry."""

    class Group(models.TextChoices):
        COMPANION = "companion", "Companion"
        EQUINE = "equine", "Equine"
        FARM = "farm", "Farm"
        EXOTIC = "exotic", "Exotic"
        LABORATORY = "laboratory", "Laboratory"

    # Coding Scheme Designator and Code Value; clinics' own entries use "99VETPACS" (PS3.16 8.2:
    # private designators start with 99).
    scheme = models.CharField(max_length=16, default="SCT")
    code = models.CharField(max_length=32)
    meaning = models.CharField(max_length=64, help_text="DICOM Code Meaning, e.g. Canis lupus familiaris")
    name = models.CharField(max_length=64, help_text="What the clinic calls it, e.g. Dog")
    group = models.CharField(max_length=16, choices=Group.choices, default=Group.COMPANION)
    is_local = models.BooleanField(default=False, help_text="Added by the clinic, not from DICOM")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "species"
        constraints = [models.UniqueConstraint(fields=["scheme", "code"], name="species_code_unique")]

    def __str__(self):
        return self.name


class Breed(models.Model):
    """A breed as DICOM codes it (CID 7480; mixed breeds CID 7486), or a clinic's own entry."""

    species = models.ForeignKey(Species, on_delete=models.PROTECT, related_name="breeds")
    scheme = models.CharField(max_length=16, default="SCT")
    code = models.CharField(max_length=32)
    meaning = models.CharField(max_length=64, help_text="DICOM Code Meaning")
    name = models.CharField(max_length=64)
    is_mixed = models.BooleanField(default=False, help_text="A mixed breed (CID 7486)")
    is_local = models.BooleanField(default=False)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["scheme", "code"], name="breed_code_unique")]
        indexes = [models.Index(fields=["species", "name"])]  # breed choices for one species

    def __str__(self):
        return self.name


class CodeMapping(models.Model):
    """Crosswalk: an external system's species, breed or service code -> ours (species and
    breed: HL7 and REST; a service code in HL7 OBR-4 -> a catalog procedure)."""

    class Kind(models.TextChoices):
        SPECIES = "species", "Species"
        BREED = "breed", "Breed"
        PROCEDURE = "procedure", "Procedure (service code)"

    system = models.CharField(max_length=64, help_text="The external system, e.g. a PMS name")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    external_code = models.CharField(max_length=64)
    external_meaning = models.CharField(max_length=128, blank=True)
    species = models.ForeignKey(Species, null=True, blank=True, on_delete=models.CASCADE)
    breed = models.ForeignKey(Breed, null=True, blank=True, on_delete=models.CASCADE)
    procedure = models.ForeignKey("imaging.Procedure", null=True, blank=True, on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "kind", "external_code"], name="code_mapping_unique"),
            models.CheckConstraint(
                condition=Q(kind="species", species__isnull=False, breed__isnull=True, procedure__isnull=True)
                | Q(kind="breed", breed__isnull=False, species__isnull=True, procedure__isnull=True)
                | Q(kind="procedure", procedure__isnull=False, species__isnull=True, breed__isnull=True),
                name="code_mapping_target",
            ),
        ]

    def __str__(self):
        return f"{self.system} {self.kind} {self.external_code} -> {self.target}"

    @property
    def target(self):
        return self.species or self.breed or self.procedure


class UnmappedCode(models.Model):
    """A code a sender used that the crosswalk does not map (yet). The message is accepted
    with the sender's text kept; this lists the code for an admin to map (counts and recent
    examples). Until then the animals that carried it point at a stand-in species or breed
    named after the sender's text (private scheme, PS3.16 8.2), and orders wait in
    integrations.HL7HeldOrder; a CodeMapping for the code moves them over
    (patients/crosswalk.py)."""

    system = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=CodeMapping.Kind.choices)
    external_code = models.CharField(max_length=64)
    external_meaning = models.CharField(max_length=128, blank=True, help_text="The text last sent with it")
    count = models.PositiveIntegerField(default=0, help_text="Messages that carried it")
    examples = models.JSONField(default=list, blank=True, help_text="The last few messages that carried it")
    species = models.ForeignKey(Species, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    breed = models.ForeignKey(Breed, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_seen = models.DateTimeField(default=now)
    last_seen = models.DateTimeField(default=now)
    mapped = models.DateTimeField(null=True, blank=True, help_text="When its mapping was applied")

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(fields=["system", "kind", "external_code"], name="unmapped_code_unique")
        ]

    def __str__(self):
        return f"{self.system} {self.kind} {self.external_code} ({self.external_meaning})"


class Owner(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        ORGANISATION = "organisation", "Organisation"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERSON)
    title = models.CharField(max_length=16, blank=True)
    family_name = models.CharField(max_length=64, blank=True)
    given_name = models.CharField(max_length=64, blank=True)
    organisation_name = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    mobile = models.CharField(max_length=32, blank=True)
    email = models.EmailField(blank=True)
    address_line1 = models.CharField(max_length=128, blank=True)
    address_line2 = models.CharField(max_length=128, blank=True)
    city = models.CharField(max_length=64, blank=True)
    postcode = models.CharField(max_length=16, blank=True)
    country = models.CharField(max_length=64, blank=True)
    notes = models.TextField(blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["family_name", "organisation_name", "given_name"]

    def __str__(self):
        if self.kind == self.Kind.ORGANISATION:
            return self.organisation_name
        return ", ".join(part for part in (self.family_name, self.given_name) if part)

    @property
    def dicom_family_name(self):
        """The family component of the animal's DICOM Patient's Name (PS3.3 C.7.1.1)."""
        return self.dicom_family_name_of(self.kind, self.family_name, self.organisation_name)

    @classmethod
    def dicom_family_name_of(cls, kind, family_name, organisation_name):
        """dicom_family_name from an owner's columns (a row read without the model)."""
        return organisation_name if kind == cls.Kind.ORGANISATION else family_name

    @property
    def phones(self):
        return [p for p in (self.phone, self.mobile) if p]


class ExternalId(models.Model):
    """A record's id in another system: the system (a PMS, an HL7 assigning authority) and the
    value there, unique per kind of record (each subclass's constraint)."""

    system = models.CharField(max_length=64)
    value = models.CharField(max_length=64)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.system}:{self.value}"


class OwnerExternalId(ExternalId):
    """The owner's id in an external system (a PMS account number, an HL7 assigning authority)."""

    owner = models.ForeignKey(Owner, on_delete=models.CASCADE, related_name="external_ids")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "value"], name="owner_external_id_unique")]


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
    def primary_owner(self):
        for ownership in self.ownerships.all():
            if ownership.is_primary:
                return ownership.owner
        return None

    @property
    def dicom_name(self):
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
    def current_weight(self):
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
    def newest_kg(cls, patient):
        """The current weight as an expression, for ``annotate``: ``patient`` is the outer
        query's patient id (``OuterRef("pk")`` from patients, ``OuterRef("patient_id")`` from
        orders). One subquery per row, on the (patient, measured_on) index."""
        return Subquery(cls.objects.filter(patient=patient).order_by(*NEWEST_WEIGHT_FIRST).values("kg")[:1])


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


class SearchTerm(models.Model):
    """One normalised word under which an owner or an animal is found (patients/search.py).

    A prefix lookup on ``term`` is an index range scan on both databases, which keeps the
    search box instant at 100,000 patients where ``icontains`` over joins would scan.
    """

    term = models.CharField(max_length=64, db_index=True)  # PostgreSQL adds a *_like index too
    patient = models.ForeignKey(Patient, null=True, on_delete=models.CASCADE, related_name="search_terms")
    owner = models.ForeignKey(Owner, null=True, on_delete=models.CASCADE, related_name="search_terms")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(patient__isnull=False, owner__isnull=True)
                | Q(patient__isnull=True, owner__isnull=False),
                name="search_term_one_target",
            )
        ]
        indexes = [
            # The animals under a word prefix read from the index alone (an index-only scan on
            # PostgreSQL): patient_ids_matching, the REST search, which pages the matches by id.
            # Through the term index PostgreSQL visited the table for every match, or walked
            # the patient_id index through every animal's words, ~10 ms for a common name.
            models.Index(
                fields=["term", "patient"],
                name="search_term_patient",
                opclasses=["varchar_pattern_ops", "int8_ops"],
            ),  # fmt: skip
        ]

    def __str__(self):
        return self.term
