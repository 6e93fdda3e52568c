"""Reads of the image index that the study page, the animal's page and the order page share."""

from django.db.models import Count, Prefetch, QuerySet

from imaging.models import InstanceVersion, Series, Study
from patients.models import Patient


def studies_listed() -> QuerySet[Study]:
    """Studies as the pages list them (the animal's, the order's): with their report and how
    many images each holds (``image_count``, which the tables show)."""
    return Study.objects.select_related("report").annotate(image_count=Count("series__instances"))


def patient_studies(*, patient: Patient) -> QuerySet[Study]:
    """The animal's studies, newest first, with image counts, series (for thumbnails) and report."""
    return (
        studies_listed()
        .filter(patient=patient)
        .prefetch_related(Prefetch("series", queryset=Series.objects.order_by("series_number", "id")))
        .order_by("-study_date", "-study_time", "-id")
    )


def study_detail(*, pk: int) -> Study:
    return Study.objects.select_related("patient__species").get(pk=pk)


def study_series(*, study: Study) -> QuerySet[Series]:
    """The study's series, with how many images each holds."""
    return (
        Series.objects.filter(study=study)
        .annotate(image_count=Count("instances"))
        .order_by("series_number", "id")
    )


def study_versions(*, study: Study) -> QuerySet[InstanceVersion]:
    """Earlier versions of the study's objects (replaced on receipt, or rewritten on linking)."""
    return (
        InstanceVersion.objects.filter(instance__series__study=study)
        .select_related("instance__series")
        .order_by("instance__series__series_number", "instance__instance_number", "-version")
    )
