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


# What a request needs the calling node to be allowed (imaging.Modality's switches).
CAPABILITIES = {"store": "may_store", "query": "may_query", "retrieve": "may_retrieve"}


def capability_allowed(*, calling_ae: str, capability: str) -> bool:
    """Whether the registered node with this AE title may ``capability`` ("store", "query",
    "retrieve"). The association was accepted already (association_allowed checked the address).
    A database that cannot answer raises: the caller refuses then (a check that cannot be made
    never allows)."""
    if settings.DICOM_ALLOW_ANY_AE:
        return True
    field = CAPABILITIES[capability]
    return Modality.objects.filter(ae_title=calling_ae, active=True, **{field: True}).exists()


def move_destination(ae_title: str) -> Modality | None:
    """The registered move destination with this AE title (PS3.4 C.4.2.1.4: C-MOVE names its
    destination by AE title; we connect only to a registered one's host and port), or None."""
    return (
        Modality.objects.filter(ae_title=ae_title, active=True, move_destination=True)
        .exclude(host="")
        .exclude(port=None)
        .first()
    )
