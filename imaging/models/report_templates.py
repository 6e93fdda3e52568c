"""Report templates: the text a vet starts a report from, per procedure (or modality and body
part) and, when the wording differs, per species. Edited by the clinic in the admin; the viewer's
report panel offers the ones that fit the study (imaging/reports/templates.py)."""

from django.db import models

from imaging.models.orders import Procedure
from patients.models import Species


class ReportTemplate(models.Model):
    name = models.CharField(max_length=80, unique=True)
    # What it is for: a procedure of the catalog, or a modality and body part (a study that came
    # without an order has only its series' headers), or both. Neither: offered for every study.
    procedure = models.ForeignKey(
        Procedure, null=True, blank=True, on_delete=models.SET_NULL, related_name="report_templates"
    )
    modality_type = models.CharField(
        max_length=16, blank=True, help_text="DICOM Modality: DX, CR, US, CT, MR…"
    )
    body_part = models.CharField(
        max_length=16,
        blank=True,
        help_text="DICOM Body Part Examined (CS): CHEST, ABDOMEN, PELVIS, KNEE, HEAD…",
    )
    # Empty: any species (the wording is the same for all).
    species = models.ForeignKey(
        Species, null=True, blank=True, on_delete=models.SET_NULL, related_name="report_templates"
    )
    findings = models.TextField(help_text="The findings as a normal study reads; the vet edits what differs.")
    conclusion = models.TextField(blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
