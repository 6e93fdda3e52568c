"""What every DIMSE handler answers with: a status and its Error Comment, a refusal for a node
that may not do what it asks, the audit actor of a request."""

import logging

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from imaging.dicom.records.status import (
    NOT_AUTHORIZED,
    error_comment,
)
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

log = logging.getLogger("imaging.dicom")


def event_actor(event: Event) -> Actor:
    return Actor(channel=Channel.DICOM, name=event.assoc.requestor.ae_title.strip())


def not_authorized(calling_ae: str, capability: str) -> Dataset:
    """PS3.7 Annex C 0124H, Refused: Not Authorized: a registered node whose switch is off."""
    log.warning("%s refused: it may not %s (its modality record)", calling_ae, capability)
    return status_with_comment(NOT_AUTHORIZED, f"{calling_ae} may not {capability} here (ask the PACS admin)")


def status_with_comment(code: int, comment: str) -> Dataset:
    """A failure status with its Error Comment (PS3.7 C.4: LO, 64 characters)."""
    status = Dataset()
    status.Status = code
    status.ErrorComment = error_comment(comment)
    return status
