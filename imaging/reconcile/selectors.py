"""Reads for reconciliation: the queue of unmatched studies, and which animals each most likely
shows."""

from dataclasses import dataclass

from django.db.models import Count, Prefetch, QuerySet

from imaging.dicom.records.datasets import animal_name_agrees, name_components, species_agrees
from imaging.models import Study
from patients.models import Owner, Ownership, Patient, Visit
from patients.selectors import patient_resolve, patient_search

# How much each piece of evidence counts. An exact patient ID beats everything; the animal's
# name with its owner's family name is next; a visit that day alone is a weak hint.
PATIENT_ID, ANIMAL_NAME, NAME_PREFIX, OWNER_NAME, VISIT, SPECIES = 100, 40, 15, 30, 25, 10
SPECIES_DIFFERS = -60


def reconciliation_queue() -> QuerySet[Study]:
    return (
        Study.objects.filter(link=Study.Link.UNMATCHED)
        .annotate(image_count=Count("series__instances"))
        .prefetch_related("series")
        .order_by("-received_at")
    )


@dataclass(frozen=True)
class Suggestion:
    patient: Patient
    reason: str
    score: int


def _candidates(study: Study, family: str, given: str) -> tuple[set[int], set[int]]:
    """Ids of the living patients any piece of evidence points at, and those named by the ID."""
    by_id: set[int] = set()
    if study.dicom_patient_id:
        for patient in Patient.objects.filter(patient_id__iexact=study.dicom_patient_id):
            by_id.add(patient_resolve(patient).pk)
    found = set(by_id)
    queries = [f"{family} {given}", given, family] if given else [family]
    for query in filter(None, (q.strip() for q in queries)):
        found.update(patient.pk for patient in patient_search(query=query, limit=15))
    if study.study_date:
        visits = Visit.objects.filter(starts_at__date=study.study_date).exclude(status=Visit.Status.CANCELLED)
        found.update(visits.values_list("patient_id", flat=True)[:50])
    return found, by_id


def _owner_named(patient: Patient, family: str) -> Owner | None:
    """The animal's owner whose family name is ``family`` (the PN's family component), if any."""
    for link in patient.ownerships.all():
        if family and link.owner.dicom_family_name.lower() == family.lower():
            return link.owner
    return None


def match_suggestions(*, study: Study, limit: int = 5) -> list[Suggestion]:
    """The most likely animals for a study, best first, each with a short reason."""
    family, given = name_components(study.dicom_patient_name)
    found, by_id = _candidates(study, family, given)
    if not found:
        return []
    visited: set[int] = set()
    if study.study_date:
        visited = set(
            Visit.objects.filter(patient_id__in=found, starts_at__date=study.study_date)
            .exclude(status=Visit.Status.CANCELLED)
            .values_list("patient_id", flat=True)
        )
    patients = (
        Patient.objects.filter(pk__in=found, merged_into__isnull=True)
        .select_related("species")
        .prefetch_related(Prefetch("ownerships", queryset=Ownership.objects.select_related("owner")))
    )
    suggestions = []
    for patient in patients:
        score = 0
        reasons: list[str] = []
        if patient.pk in by_id:
            score += PATIENT_ID
            reasons.append("same patient ID")
        if given and animal_name_agrees(study.dicom_patient_name, patient):
            score += ANIMAL_NAME
            reasons.append("animal's name")
        elif given and patient.name.lower().startswith(given.lower()):
            score += NAME_PREFIX
            reasons.append(f"name like {given}")
        owner = _owner_named(patient, family)
        if owner is not None:
            score += OWNER_NAME
            reasons.append(f"owner {owner.dicom_family_name}")
        if patient.pk in visited:
            score += VISIT
            reasons.append("visit that day")
        if score == 0:
            continue  # found by some other word (a phone number, an email) only
        if study.dicom_species:
            if species_agrees(study.dicom_species, patient):
                score += SPECIES
                reasons.append(patient.species.name.lower())
            elif patient.pk in by_id:
                score += SPECIES_DIFFERS
                reasons.append(f"but a {patient.species.name.lower()}, the images say {study.dicom_species}")
            else:
                continue  # the images name another species: not this animal
        reason = ", ".join(reasons)
        suggestions.append(Suggestion(patient=patient, reason=reason[0].upper() + reason[1:], score=score))
    suggestions.sort(key=lambda s: (-s.score, s.patient.name.lower(), s.patient.pk))
    return suggestions[:limit]
