"""C-FIND: the Modality Worklist and the archive's Query/Retrieve (handlers.HANDLERS routes
EVT_C_FIND here)."""

import logging
from collections.abc import Iterator
from typing import cast

from django.db import DatabaseError
from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import (sop_class.py)
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from imaging.archive.query import Query, Root, archive_find, retrieve_ae_title
from imaging.dicom.net.access import (
    association_may,
)
from imaging.dicom.net.replies import event_actor, not_authorized, status_with_comment
from imaging.dicom.records.datasets import response_keys, worklist_answer_dataset
from imaging.dicom.records.matching import MatchingError, key_value, unmatched_keys
from imaging.dicom.records.query_answers import (
    answer_build,
    find_answer,
    identifier_keys,
    sequence_keys_matched,
)
from imaging.dicom.records.status import (
    CANCELLED,
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    OUT_OF_RESOURCES,
    PENDING,
    PENDING_OPTIONAL_KEYS_UNSUPPORTED,
    UNABLE_TO_PROCESS,
)
from imaging.orders.worklist import worklist_rows

log = logging.getLogger("imaging.dicom")


# C-FIND's SOP classes besides the worklist's: the Query/Retrieve information models (PS3.4 C.6).
QUERY_ROOTS = {
    str(PatientRootQueryRetrieveInformationModelFind): Root.PATIENT,
    str(StudyRootQueryRetrieveInformationModelFind): Root.STUDY,
}


# C-FIND's Service-class-application-information (PS3.4 C.5.1.1, Tables C.5-1 and C.5-2): byte 1
# relational queries, 2 combined date-time matching, 3 fuzzy semantic matching of person names,
# 4 timezone query adjustment, 5 Enhanced Multi-Frame Image Conversion. We do byte 2 only.
COMBINED_DATETIME_BYTE = 1  # the second byte, 0-based


def on_sop_extended(event: Event) -> dict[str, bytes]:
    """SOP Class Extended Negotiation (PS3.7 D.3.3.5) for the Query/Retrieve C-FIND classes:
    combined date-time matching is agreed when asked for (1 answered 1, C.5.1.1) and kept on
    the association for its queries (combined_datetime_agreed); every other option is turned
    down (0: relational queries, fuzzy matching, timezone adjustment and Enhanced Multi-Frame
    views we do not do). The answer is as long as the field offered (one byte answers one
    byte). Other SOP classes' items are not answered, which turns them down too."""
    offered: dict[str, bytes] = event.app_info  # type: ignore[attr-defined]  # EVT_SOP_EXTENDED's
    answers: dict[str, bytes] = {}
    agreed: set[str] = set()
    for uid, info in offered.items():
        if str(uid) not in QUERY_ROOTS or not 1 <= len(info) <= 5:
            continue
        answer = bytearray(len(info))
        if len(info) > COMBINED_DATETIME_BYTE and info[COMBINED_DATETIME_BYTE] == 1:
            answer[COMBINED_DATETIME_BYTE] = 1
            agreed.add(str(uid))
        answers[uid] = bytes(answer)
    event.assoc.combined_datetime_classes = agreed  # type: ignore[attr-defined]  # ours, as access.Rights
    return answers


def combined_datetime_agreed(event: Event) -> bool:
    """Whether this C-FIND's association agreed combined date-time matching for its SOP class."""
    agreed: set[str] = getattr(event.assoc, "combined_datetime_classes", set())
    return str(cast(C_FIND, event.request).AffectedSOPClassUID) in agreed


def on_find(event: Event) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """C-FIND: the Modality Worklist or the archive's Query/Retrieve, by the request's SOP
    class, for a calling node that may query (a check that cannot be made refuses)."""
    calling_ae = event.assoc.requestor.ae_title.strip()
    if not association_may(event.assoc, "query"):
        yield not_authorized(calling_ae, "query"), None
        return
    root = QUERY_ROOTS.get(str(cast(C_FIND, event.request).AffectedSOPClassUID))
    if root is None:
        yield from _worklist_find(event, calling_ae)
    else:
        yield from _archive_find(event, calling_ae, root)


def _archive_find(
    event: Event, calling_ae: str, root: Root
) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """Query/Retrieve C-FIND (PS3.4 C.4.1.3): the database matches (imaging/archive/query.py),
    one Pending response per answer, C-CANCEL honoured between responses."""
    try:
        identifier = event.identifier
        keys = response_keys(identifier)
        query = Query(
            level=key_value(identifier, "QueryRetrieveLevel"), keys=identifier_keys(identifier), root=root,
            combined_datetime=combined_datetime_agreed(event),
        )  # fmt: skip
        found = archive_find(actor=event_actor(event), query=query)
        not_matched = found.unsupported or sequence_keys_matched(identifier)
    except Exception as error:
        yield _refusal(error, "archive", calling_ae), None
        return
    log.info("%s query from %s: %d match(es)", found.level, calling_ae, len(found.answers))
    pending = PENDING_OPTIONAL_KEYS_UNSUPPORTED if not_matched else PENDING
    ae_title, syntax = retrieve_ae_title(), event.context.transfer_syntax
    for answer in found.answers:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        elements = answer_build(found.level, answer, retrieve_ae_title=ae_title)
        encoded = find_answer(keys, found.level, elements, syntax)
        if encoded is None:  # pydicom cannot encode it in this transfer syntax: say so, not a bare Pending
            yield (
                status_with_comment(UNABLE_TO_PROCESS, "Cannot encode an answer in this transfer syntax"),
                None,
            )
            return
        yield pending, encoded


def _worklist_find(event: Event, calling_ae: str) -> Iterator[tuple[Dataset | int, Dataset | None]]:
    """Modality Worklist C-FIND (PS3.4 K.4.1.3): the database matches, one Pending response
    per order, C-CANCEL honoured between responses. Each answer is a data set read from its
    encoding in the context's transfer syntax, which it keeps (datasets.worklist_answer_dataset)."""
    try:
        identifier = event.identifier
        keys = response_keys(identifier)
        rows = worklist_rows(identifier=identifier)
        pending = PENDING_OPTIONAL_KEYS_UNSUPPORTED if unmatched_keys(identifier) else PENDING
    except Exception as error:
        yield _refusal(error, "worklist", calling_ae), None
        return
    log.info("worklist query from %s: %d match(es)", calling_ae, len(rows))
    syntax = event.context.transfer_syntax
    for row in rows:
        if event.is_cancelled:
            yield CANCELLED, None
            return
        answer = worklist_answer_dataset(keys, row, syntax)
        if answer is None:  # pydicom cannot encode it in this transfer syntax: say so, not a bare Pending
            yield (
                status_with_comment(
                    UNABLE_TO_PROCESS, "Cannot encode a worklist answer in this transfer syntax"
                ),
                None,
            )
            return
        yield pending, answer


def _refusal(error: Exception, what: str, calling_ae: str) -> Dataset:
    """The failure status for a C-FIND that could not be answered (PS3.4 C.4.1.1.4, K.4.1.1.4):
    an identifier we cannot make sense of 0xA900, the database down 0xA700, an identifier
    pydicom cannot decode 0xC000; each with an Error Comment."""
    if isinstance(error, MatchingError):
        log.warning("%s query from %s refused: %s", what, calling_ae, error)
        return status_with_comment(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(error))
    if isinstance(error, DatabaseError):
        log.error("%s query from %s failed", what, calling_ae, exc_info=error)
        return status_with_comment(OUT_OF_RESOURCES, f"The {what} database is unavailable")
    log.warning("%s query from %s: cannot read the identifier: %s", what, calling_ae, error)
    return status_with_comment(UNABLE_TO_PROCESS, "Cannot read the query identifier")
