"""The species/breed vocabulary (DICOM codes, PS3.16) and the crosswalk from other systems'
codes to it, with the codes the crosswalk does not map yet."""

from django.db import models
from django.db.models import Q
from django.utils.timezone import now


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
