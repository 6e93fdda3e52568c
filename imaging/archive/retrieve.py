"""What a retrieve names and how each object goes out: the service behind C-MOVE and C-GET
(imaging/dicom/net/retrieve_scp.py, handlers.on_move and on_get).

A retrieve names instances by unique keys only (PS3.4 C.4.2.1.4 C-MOVE, C.4.3.1.3 C-GET): Patient
ID at PATIENT level (Patient Root only), Study, Series or SOP Instance UIDs at the levels below,
a list of UIDs allowed at the retrieve's own level (C.4.2.2.1, list of UID matching). The database
finds them; a bad identifier is a RetrieveRefused that the adapter answers with a status and an
Error Comment. Each object then goes out as stored when the peer accepts its transfer syntax (its
file, sent as it is), otherwise decompressed (transcode.py).
"""

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import Enum

from django.db.models import Q
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from imaging.archive.transcode import CannotTranscode, dataset_transcoded, instance_path, syntax_choose
from imaging.dicom.records.integrity import is_uid
from imaging.models import Instance, Study
from vetclinic.audit.services import Actor, audit_record

# The levels of each information model, top down (PS3.4 C.6.1 Patient Root, C.6.2 Study Root),
# and the unique key of each level (C.6.1.1, C.6.2.1).
PATIENT_ROOT = ("PATIENT", "STUDY", "SERIES", "IMAGE")
STUDY_ROOT = ("STUDY", "SERIES", "IMAGE")
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
# The counts of a C-MOVE or C-GET response are US (PS3.7 C.4.2.1.6): no more sub-operations.
MOST_SUBOPERATIONS = 65535


class RetrieveRefusal(Enum):
    IDENTIFIER = "identifier"  # the identifier does not name instances the way a retrieve must
    TOO_MANY = "too many"  # more instances than one retrieve can count


class RetrieveRefused(Exception):
    def __init__(self, reason: RetrieveRefusal, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class InstanceUnavailable(Exception):
    """This object cannot be sent to this peer (its file is missing or unreadable, it cannot be
    decoded, or the peer accepts its SOP class in no transfer syntax we can write): one failed
    sub-operation, the others go on (PS3.4 C.4.2.3.1)."""


@dataclass(frozen=True)
class RetrieveKeys:
    """The instances a retrieve names: its level and, by unique key, the values asked."""

    level: str
    keys: dict[str, tuple[str, ...]]

    def __str__(self) -> str:
        return "; ".join(f"{key}={chr(92).join(values)}" for key, values in self.keys.items())


@dataclass(frozen=True)
class RetrievedInstance:
    study_id: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    storage_key: str


def _values(identifier: Dataset, keyword: str) -> tuple[str, ...]:
    """The values of ``keyword``: one (a str), several (pydicom's MultiValue), or none."""
    value = identifier.get(keyword)
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(text for text in (str(one).strip() for one in values) if text)


def retrieve_keys(identifier: Dataset, *, levels: tuple[str, ...]) -> RetrieveKeys:
    """The retrieve an identifier asks for, in the information model whose ``levels`` are given
    (PATIENT_ROOT or STUDY_ROOT). Raises RetrieveRefused (PS3.4 C.4.2.1.4: 0xA900, identifier does
    not match SOP class) when it names nothing the way a retrieve must."""
    try:
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        if level not in levels:
            raise RetrieveRefused(
                RetrieveRefusal.IDENTIFIER, f"Query/Retrieve Level must be one of {', '.join(levels)}"
            )
        keys: dict[str, tuple[str, ...]] = {}
        # The retrieve's level and the levels above it (C.4.2.2.1: hierarchical, a unique key per
        # level above). Many SCUs send only the level's own key, which names the instances
        # already: the keys above narrow the match when present and are not required.
        for above in levels[: levels.index(level) + 1]:
            keyword = UNIQUE_KEYS[above]
            values = _values(identifier, keyword)
            if above != level:
                if len(values) > 1:
                    raise RetrieveRefused(
                        RetrieveRefusal.IDENTIFIER, f"{keyword}: one value above the retrieve level"
                    )
            elif not values:
                raise RetrieveRefused(RetrieveRefusal.IDENTIFIER, f"{keyword} is required at {level} level")
            if keyword == "PatientID":
                # Single value matching only (C.2.2.2.1): no wildcards, no list.
                if len(values) > 1 or any(c in values[0] for c in "*?"):
                    raise RetrieveRefused(RetrieveRefusal.IDENTIFIER, "PatientID: one value, no wildcards")
            elif not all(is_uid(value) for value in values):
                raise RetrieveRefused(RetrieveRefusal.IDENTIFIER, f"{keyword}: UIDs only, no wildcards")
            if values:
                keys[keyword] = values
    except RetrieveRefused:
        raise
    except Exception as error:  # an identifier pydicom cannot decode
        raise RetrieveRefused(RetrieveRefusal.IDENTIFIER, f"Cannot read the identifier: {error}") from error
    return RetrieveKeys(level=level, keys=keys)


def _patient_matches(patient_id: str) -> Q:
    """A study's Patient ID is its record's when linked (the record is the truth, as C-FIND
    answers), else what its headers said."""
    return Q(series__study__patient__patient_id=patient_id) | Q(
        series__study__patient__isnull=True, series__study__dicom_patient_id=patient_id
    )


def instances_retrieve(keys: RetrieveKeys) -> list[RetrievedInstance]:
    """The instances the keys name, study by study, series by series, in instance order. Raises
    RetrieveRefused when they are more than one retrieve can count."""
    matches = Q()
    if "PatientID" in keys.keys:
        matches &= _patient_matches(keys.keys["PatientID"][0])
    for keyword, field in (("StudyInstanceUID", "series__study__study_instance_uid"),
                           ("SeriesInstanceUID", "series__series_instance_uid"),
                           ("SOPInstanceUID", "sop_instance_uid")):  # fmt: skip
        if keyword in keys.keys:
            matches &= Q(**{f"{field}__in": keys.keys[keyword]})
    rows = (
        Instance.objects.filter(matches)
        .order_by("series__study_id", "series__series_number", "series_id", "instance_number", "id")
        .values_list(
            "series__study_id", "sop_class_uid", "sop_instance_uid", "transfer_syntax_uid", "storage_key"
        )
    )
    found = [RetrievedInstance(*row) for row in rows[: MOST_SUBOPERATIONS + 1]]
    if len(found) > MOST_SUBOPERATIONS:
        raise RetrieveRefused(
            RetrieveRefusal.TOO_MANY, f"More than {MOST_SUBOPERATIONS} instances: retrieve a series at a time"
        )
    return found


@contextmanager
def instance_sendable(instance: RetrievedInstance, accepted: Iterable[str]) -> Iterator[str]:
    """A file holding the object as a peer that accepts the transfer syntaxes ``accepted`` (for
    its SOP class) may take it, to be sent from the file as it is read: its stored file when the
    peer accepts the stored syntax (byte for byte), otherwise a temporary file of the data set
    decompressed into a syntax it accepts, or losslessly compressed into one when it accepts no
    uncompressed one (PS3.4 C.4.2.3.1: never refused because the peer cannot decode). Raises
    InstanceUnavailable."""
    accepted = list(accepted)
    if not accepted:
        raise InstanceUnavailable(f"The peer accepts no presentation context for {instance.sop_class_uid}")
    syntax = syntax_choose(instance.transfer_syntax_uid, accepted, compress=True)
    if syntax is None:
        raise InstanceUnavailable("The peer accepts neither the stored nor a syntax we can write losslessly")
    with ExitStack() as stack:
        try:
            path = stack.enter_context(instance_path(instance.storage_key))
            if not os.path.isfile(path):
                raise InstanceUnavailable(f"The stored object {instance.storage_key} is missing")
            if syntax != instance.transfer_syntax_uid:
                path = _file_written(stack, dataset_transcoded(path, syntax))
        except CannotTranscode as error:
            raise InstanceUnavailable(str(error)) from error
        except OSError as error:  # storage: missing from S3, unreadable
            raise InstanceUnavailable(
                f"Cannot read the stored object {instance.storage_key}: {error}"
            ) from error
        yield path  # what goes wrong while it is sent is the sender's to tell


def _file_written(stack: ExitStack, dataset: Dataset) -> str:
    """A temporary Part 10 file of ``dataset``, gone when ``stack`` closes. pydicom writes it in
    the syntax its file meta names, converting elements read in another encoding as it goes."""
    copy = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".dcm"))
    dcmwrite(copy, dataset, enforce_file_format=True)
    copy.flush()
    return copy.name


@dataclass
class RetrieveTally:
    """Sub-operation outcomes of one retrieve, study by study, for the audit log."""

    instances: dict[int, int]
    completed: dict[int, int]
    failed: dict[int, int]
    warning: dict[int, int]

    @classmethod
    def of(cls, instances: list[RetrievedInstance]) -> "RetrieveTally":
        tally = cls({}, {}, {}, {})
        for instance in instances:
            tally.instances[instance.study_id] = tally.instances.get(instance.study_id, 0) + 1
        return tally

    def count(self, instance: RetrievedInstance, outcome: str) -> None:
        counts = {"completed": self.completed, "failed": self.failed, "warning": self.warning}[outcome]
        counts[instance.study_id] = counts.get(instance.study_id, 0) + 1


def retrieve_audit(
    *, actor: Actor, service: str, keys: RetrieveKeys, destination: str, tally: RetrieveTally
) -> None:
    """One audit entry per study a retrieve sent from: who (``actor``), through which service
    (C-MOVE, C-GET), what it asked (level and keys), where to, and how many of the study's
    instances went, failed or went with a warning. A retrieve that named nothing sent nothing:
    it is only logged."""
    for study in Study.objects.filter(pk__in=list(tally.instances)).order_by("pk"):
        audit_record(
            actor=actor, instance=study, action="retrieve",
            changes={
                "service": [None, service], "level": [None, keys.level], "keys": [None, str(keys)],
                "destination": [None, destination], "instances": [None, tally.instances[study.pk]],
                "completed": [None, tally.completed.get(study.pk, 0)], "failed": [None, tally.failed.get(study.pk, 0)],
                "warning": [None, tally.warning.get(study.pk, 0)],
            },
        )  # fmt: skip
