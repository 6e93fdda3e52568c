"""Who may associate with the DICOM node: the registered modalities (imaging.Modality)."""

import socket

from django.conf import settings

from imaging.models import Modality


def association_allowed(*, calling_ae: str, host: str) -> bool:
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
