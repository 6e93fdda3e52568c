"""The words owners and animals are found under (patients/search.py fills and reads them)."""

from django.db import models
from django.db.models import Q

from patients.models.owners import Owner
from patients.models.patients import Patient


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
