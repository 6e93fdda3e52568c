"""Reads of the imaging index that views, the DICOM node and the API share."""
import socket

from django.conf import settings
from django.db.models import Count, Prefetch

from imaging.models import Modality, Series, Study


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


def studies_listed():
    """Studies as the pages list them (the animal's, the order's): with their report and how
    many images each holds (``image_count``, which the tables show)."""
    return Study.objects.select_related("report").annotate(image_count=Count("series__instances"))


def patient_studies(*, patient):
    """The animal's studies, newest first, with image counts, series (for thumbnails) and report."""
    return (
        studies_listed()
        .filter(patient=patient)
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
