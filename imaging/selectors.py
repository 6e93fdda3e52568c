"""Reads of the imaging index that views, the DICOM node and the API share."""
import socket

from django.conf import settings
from django.db.models import Count

from imaging.models import Modality, Study


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


def reconciliation_queue():
    return (
        Study.objects.filter(link=Study.Link.UNMATCHED)
        .annotate(image_count=Count("series__instances"))
        .prefetch_related("series")
        .order_by("-received_at")
    )
