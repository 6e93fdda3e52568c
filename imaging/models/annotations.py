"""The marks and measurements vets draw on a study's images, kept per study and versioned.

One AnnotationSet a study holds its current version number (the row locked while saving, so
two saves cannot both become version n+1); every save is a new AnnotationVersion, older ones
kept: who saved what, when, as the viewer serialized it (imaging/annotations/services.py).
"""

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from imaging.models.studies import Study


class AnnotationSet(models.Model):
    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="annotation_set")
    # The current version's number: what a save must name to replace it (optimistic locking).
    version = models.PositiveIntegerField(default=0)
    updated = models.DateTimeField(default=now)
    # The DICOM series the exports go into (imaging/annotations/sr.py): one for the measurement
    # SRs, one for the key object selections (a series has one modality, PS3.3 C.7.3.1).
    sr_series_uid = models.CharField(max_length=64, blank=True)
    ko_series_uid = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"Annotations on {self.study} (v{self.version})"


class AnnotationVersion(models.Model):
    annotation_set = models.ForeignKey(AnnotationSet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    saved_by_name = models.CharField(max_length=200, blank=True)  # kept if the account changes
    saved_at = models.DateTimeField(default=now)
    # Cornerstone3D annotations as they serialize (each with data.vetpacs, features.js).
    annotations = models.JSONField(default=list)
    # [{seriesUid, sopInstanceUid, frame, imageId}]
    key_images = models.JSONField(default=list)
    # Who drew or last changed each annotation, by its annotationUID: a set is the work of
    # several colleagues, each save carrying the others' marks over unchanged.
    authors = models.JSONField(default=dict)
    # The DICOM objects this version was exported as (empty until it is).
    sr_sop_instance_uid = models.CharField(max_length=64, blank=True)
    ko_sop_instance_uid = models.CharField(max_length=64, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["annotation_set", "number"], name="annotation_version_unique"),
        ]

    def __str__(self) -> str:
        return f"Annotations v{self.number} on study {self.annotation_set.study_id}"
