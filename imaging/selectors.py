"""Reads of the imaging index that views, the DICOM node and the API share."""
import socket

from django.conf import settings
from django.db.models import Count, FilteredRelation, OuterRef, Prefetch, Q, Subquery

from imaging.models import ImagingOrder, Modality, Series, Study
from patients.models import WeightRecord


def association_allowed(*, calling_ae, host):
    """A registered, active modality with this AE title (and this address, if it has one)."""
    if settings.DICOM_ALLOW_ANY_AE:
        return True
    modality = Modality.objects.filter(ae_title=calling_ae, active=True).first()
    if modality is None:
        return False
    if not modality.host:
        return True
    if modality.host == host:
        return True
    try:
        return host in {info[4][0] for info in socket.getaddrinfo(modality.host, None)}
    except OSError:
        return False


def patient_studies(*, patient):
    """The animal's studies, newest first, with image counts, series (for thumbnails) and report."""
    return (
        Study.objects.filter(patient=patient)
        .select_related("report")
        .annotate(image_count=Count("series__instances"))
        .prefetch_related(Prefetch("series", queryset=Series.objects.order_by("series_number", "id")))
        .order_by("-study_date", "-study_time", "-id")
    )


def reconciliation_queue():
    return (
        Study.objects.filter(link=Study.Link.UNMATCHED)
        .annotate(image_count=Count("series__instances"))
        .prefetch_related("series")
        .order_by("-received_at")
    )


def worklist_items(*, identifier):
    """Orders matching a Modality Worklist identifier (imaging/dicom/matching.py), the
    database doing the matching; only orders still to be done unless a step status is asked."""
    from imaging.dicom.matching import worklist_filter

    condition, status_asked = worklist_filter(identifier)
    orders = ImagingOrder.objects.filter(condition)
    if not status_asked:
        orders = orders.filter(status__in=ImagingOrder.WORKLIST_STATUSES)
    # The animal's primary owner and last weight come in the same row (worklist_rows reads
    # them): one query per C-FIND, however many orders match.
    last_weight = WeightRecord.objects.filter(patient=OuterRef("patient_id")).order_by("-measured_on", "-id")
    return (
        orders.annotate(
            primary_ownership=FilteredRelation("patient__ownerships", condition=Q(patient__ownerships__is_primary=True)),
            last_weight=Subquery(last_weight.values("kg")[:1]),
        )
        .select_related("patient__species", "patient__breed", "procedure", "station", "primary_ownership__owner")
        .order_by("scheduled_start", "id")
    )


def worklist_rows(*, identifier):
    """The matching orders as plain rows of exactly what their worklist items are made of
    (datasets.WORKLIST_COLUMNS), for datasets.worklist_elements: no model objects to make,
    fewer columns to read."""
    from imaging.dicom.datasets import WORKLIST_COLUMNS

    return list(worklist_items(identifier=identifier).values(*WORKLIST_COLUMNS))
