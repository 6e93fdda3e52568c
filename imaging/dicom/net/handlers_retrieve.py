"""C-MOVE and C-GET (handlers.HANDLERS routes EVT_C_MOVE and EVT_C_GET here; retrieve_scp.py
runs their sub-operations)."""

import logging
from collections.abc import Generator
from typing import Any

from django.db import DatabaseError
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import (sop_class.py)
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
)

from imaging.archive.retrieve import (
    PATIENT_ROOT,
    STUDY_ROOT,
    RetrievedInstance,
    RetrieveKeys,
    RetrieveRefusal,
    RetrieveRefused,
    RetrieveTally,
    instances_retrieve,
    retrieve_audit,
    retrieve_keys,
)
from imaging.dicom.net.access import (
    association_may,
    move_destination,
)
from imaging.dicom.net.replies import event_actor, not_authorized, status_with_comment
from imaging.dicom.net.retrieve_scp import move_contexts
from imaging.dicom.net.tls import node_tls_args
from imaging.dicom.records.status import (
    CANCELLED,
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    MOVE_DESTINATION_UNKNOWN,
    OUT_OF_RESOURCES_MATCHES,
    PENDING,
    SUB_OPERATIONS_FAILED,
    UNABLE_TO_PROCESS,
)

log = logging.getLogger("imaging.dicom")
PATIENT_ROOT_MODELS = (
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
)


def on_move(event: Event) -> Generator[Any, str | None, None]:
    """C-MOVE (PS3.4 C.4.2): the objects the identifier names, to the registered move destination
    it names by AE title (our registry gives its host and port, never the request). Yields as
    retrieve_scp.py describes: a refusal, or the destination, the count and the objects."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    destination_ae = str(event.move_destination).strip()
    refusal = _retrieve_refusal(event.assoc, calling_ae)
    if refusal is not None:
        yield refusal
        return
    try:
        destination = move_destination(destination_ae)
    except Exception:  # a check that cannot be made refuses
        log.exception("C-MOVE from %s refused: cannot look up the move destination now", calling_ae)
        yield status_with_comment(OUT_OF_RESOURCES_MATCHES, "Cannot look up the move destination now")
        return
    if destination is None:
        log.warning(
            "C-MOVE from %s refused: %r is not a registered move destination", calling_ae, destination_ae
        )
        yield status_with_comment(MOVE_DESTINATION_UNKNOWN, f"Move destination unknown: {destination_ae}")
        return
    found = _retrieve_find(event, calling_ae)
    if isinstance(found, Dataset):
        yield found
        return
    keys, instances = found
    connect: dict[str, Any] = {"contexts": move_contexts(instances)}
    try:
        tls_args = node_tls_args(destination)  # its certificate settings, read now (a bad file raises)
    except (OSError, ValueError) as error:
        log.error("C-MOVE from %s to %s: cannot set up TLS: %s", calling_ae, destination_ae, error)
        yield status_with_comment(SUB_OPERATIONS_FAILED, f"Cannot set up TLS to {destination_ae}")
        return
    if tls_args is not None:
        connect["tls_args"] = tls_args
    yield destination.host, destination.port, connect
    log.info("C-MOVE from %s to %s: %s, %d instance(s)", calling_ae, destination_ae, keys, len(instances))
    yield from _retrieve_items(event, "C-MOVE", keys, instances, destination=destination_ae)


def on_get(event: Event) -> Generator[Any, str | None, None]:
    """C-GET (PS3.4 C.4.3): the objects the identifier names, sent back on the caller's own
    association under the storage contexts it proposed with the SCP role (PS3.7 D.3.3.4)."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    refusal = _retrieve_refusal(event.assoc, calling_ae)
    if refusal is not None:
        yield refusal
        return
    found = _retrieve_find(event, calling_ae)
    if isinstance(found, Dataset):
        yield found
        return
    keys, instances = found
    log.info("C-GET from %s: %s, %d instance(s)", calling_ae, keys, len(instances))
    yield from _retrieve_items(event, "C-GET", keys, instances, destination=calling_ae)


def _retrieve_refusal(assoc: Association, calling_ae: str) -> Dataset | None:
    """Why this node may not retrieve (imaging.Modality.may_retrieve, decided when it associated:
    access.association_may), or None if it may."""
    if not association_may(assoc, "retrieve"):
        return not_authorized(calling_ae, "retrieve")
    return None


def _retrieve_find(event: Event, calling_ae: str) -> tuple[RetrieveKeys, list[RetrievedInstance]] | Dataset:
    """The instances the identifier names, or a refusal (PS3.4 C.4.2.1.4: 0xA900 for an identifier
    that names nothing the way a retrieve must)."""
    levels = PATIENT_ROOT if event.context.abstract_syntax in PATIENT_ROOT_MODELS else STUDY_ROOT
    try:
        keys = retrieve_keys(event.identifier, levels=levels)
        return keys, instances_retrieve(keys)
    except RetrieveRefused as refused:
        log.warning("retrieve from %s refused: %s", calling_ae, refused.detail)
        code = (
            IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
            if refused.reason is RetrieveRefusal.IDENTIFIER
            else OUT_OF_RESOURCES_MATCHES
        )
        return status_with_comment(code, refused.detail)
    except DatabaseError:
        log.exception("retrieve from %s failed", calling_ae)
        return status_with_comment(OUT_OF_RESOURCES_MATCHES, "The archive's database is unavailable")
    except Exception as error:  # an identifier pydicom cannot decode
        log.warning("retrieve from %s: cannot read the identifier: %s", calling_ae, error)
        return status_with_comment(UNABLE_TO_PROCESS, "Cannot read the retrieve identifier")


def _retrieve_items(
    event: Event, service: str, keys: RetrieveKeys, instances: list[RetrievedInstance], *, destination: str
) -> Generator[Any, str | None, None]:
    """The count, then each object with C-CANCEL honoured between them (PS3.4 C.4.2.3.1); the
    outcome of each comes back as the value of its yield. Audited however it ends."""
    tally = RetrieveTally.of(instances)
    try:
        yield len(instances)
        for instance in instances:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            outcome = yield PENDING, instance
            if outcome is not None:
                tally.count(instance, outcome)
    finally:
        try:
            retrieve_audit(
                actor=event_actor(event), service=service, keys=keys, destination=destination, tally=tally
            )
        except Exception:
            log.exception(
                "%s from %s: cannot write its audit entries", service, event.assoc.requestor.ae_title
            )
