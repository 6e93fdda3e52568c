"""The people and organisations animals belong to, and their ids in other systems."""

from django.db import models
from django.utils.timezone import now


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
    def dicom_family_name(self) -> str:
        """The family component of the animal's DICOM Patient's Name (PS3.3 C.7.1.1)."""
        return self.dicom_family_name_of(self.kind, self.family_name, self.organisation_name)

    @classmethod
    def dicom_family_name_of(cls, kind: str, family_name: str, organisation_name: str) -> str:
        """dicom_family_name from an owner's columns (a row read without the model)."""
        return organisation_name if kind == cls.Kind.ORGANISATION else family_name

    @property
    def phones(self) -> list[str]:
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
