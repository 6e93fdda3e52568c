"""Who may associate with the DICOM node (the registered modalities, imaging.Modality), and what
each may do once associated (its may_store / may_query / may_retrieve switches)."""

import socket
from dataclasses import dataclass

from django.conf import settings
from pynetdicom.association import Association

from imaging.models import Modality


@dataclass(frozen=True)
class Rights:
    """What an associated node may do. Decided once, when it associates (handlers.on_requested,
    the same query that checks who calls), and kept on the association: a database query per
    C-STORE would cost the ingest its speed, and a node's switches rarely change in the middle
    of an association (a change applies from its next one).

    store: C-STORE, Storage Commitment, and MPPS (N-CREATE/N-SET change an order: the modality
    that acquires and stores sends them, IHE Scheduled Workflow's Acquisition Modality; the
    worklist is its one read). query: the worklist and study C-FIND. retrieve: C-MOVE, C-GET."""

    store: bool = False
    query: bool = False
    retrieve: bool = False


EVERY_RIGHT = Rights(store=True, query=True, retrieve=True)


def association_rights(*, calling_ae: str, host: str) -> Rights | None:
    """The rights of the registered, active modality with this AE title (calling from its host,
    if it has one), or None: it may not associate. A database that cannot answer raises: the
    caller refuses then (a check that cannot be made never allows)."""
    if settings.DICOM_ALLOW_ANY_AE:
        return EVERY_RIGHT
    modality = (
        Modality.objects.filter(ae_title=calling_ae, active=True)
        .only("host", "may_store", "may_query", "may_retrieve")
        .first()
    )
    if modality is None or not _from_its_host(modality.host, host):
        return None
    return Rights(store=modality.may_store, query=modality.may_query, retrieve=modality.may_retrieve)


def _from_its_host(registered: str, host: str) -> bool:
    if not registered or registered == host:
        return True
    try:
        return host in {info[4][0] for info in socket.getaddrinfo(registered, None)}
    except OSError:
        return False


def association_allowed(*, calling_ae: str, host: str) -> bool:
    """A registered, active modality with this AE title (and this address, if it has one)."""
    return association_rights(calling_ae=calling_ae, host=host) is not None


def association_rights_keep(assoc: Association, rights: Rights) -> None:
    """Keep what on_requested decided on pynetdicom's association object (ours, like its
    ingest batch), for every request of the association to read (association_may)."""
    assoc.node_rights = rights  # type: ignore[attr-defined]


def association_may(assoc: Association, capability: str) -> bool:
    """Whether the association's node may ``capability`` ("store", "query", "retrieve"), as
    decided when it associated. No decision kept (it could not be made) refuses."""
    rights: Rights | None = getattr(assoc, "node_rights", None)
    return rights is not None and bool(getattr(rights, capability))


def move_destination(ae_title: str) -> Modality | None:
    """The registered move destination with this AE title (PS3.4 C.4.2.1.4: C-MOVE names its
    destination by AE title; we connect only to a registered one's host and port), or None."""
    return (
        Modality.objects.filter(ae_title=ae_title, active=True, move_destination=True)
        .exclude(host="")
        .exclude(port=None)
        .first()
    )
