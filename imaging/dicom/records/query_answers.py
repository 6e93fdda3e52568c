"""Query/Retrieve answers (PS3.4 C.6): the attributes of a patient, study, series or instance,
from the rows imaging/archive/query.py reads, as Elements; the C-FIND adapter picks the keys a
request named (``find_response``), QIDO-RS writes them as DICOM JSON (dicom_json.py).

A study linked to an animal answers with the record's patient attributes, built as the worklist
builds them (datasets.patient_elements: Patient's Name ``Owner^Animal``, species, breed,
neutered, the owner as Responsible Person), because the record is the truth; an unlinked study
answers with what its headers said (Study.dicom_*, as ingest read them).
"""

from collections.abc import Mapping
from datetime import date, time
from enum import StrEnum

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import encode

from imaging.dicom.records.datasets import (
    OWNER,
    OWNER_COLUMNS,
    PATIENT_COLUMNS,
    QUERY_RETRIEVE_LEVEL,
    Elements,
    EncodedDataset,
    ResponseKey,
    Row,
    answer_elements,
    patient_elements,
)
from imaging.dicom.records.matching import key_value


class Level(StrEnum):
    """Query/Retrieve Level (0008,0052), from the top of the hierarchy (PS3.4 C.6.1, C.6.2)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def depth(self) -> int:
        return list(Level).index(self)


# An answer: the row of each entity it is made of, by level (a series' answer has its series'
# row and its study's; a patient's only the patient's).
Answer = Mapping[Level, Row]

# What each entity's attributes are made of (imaging/archive/query.py reads exactly these).
# A study's row carries its animal's record columns (under "patient__", the owner's under
# datasets.OWNER, as the worklist's rows do) and what its headers said; "patient_id" is the
# linked animal's primary key, None for an unlinked study.
HEADER_COLUMNS = (
    "dicom_patient_id", "dicom_patient_name", "dicom_species", "dicom_birth_date", "dicom_patient_sex",
    "dicom_breed", "dicom_sex_neutered", "dicom_responsible_person", "dicom_responsible_person_role",
)  # fmt: skip
RECORD_COLUMNS = (
    *("patient__" + path for path in PATIENT_COLUMNS),
    *(OWNER + column for column in OWNER_COLUMNS),
)
STUDY_COLUMNS = (
    "id", "patient_id", "study_instance_uid", "study_date", "study_time", "accession_number", "study_id",
    "description", "referring_physician", *HEADER_COLUMNS, *RECORD_COLUMNS,
)  # fmt: skip
SERIES_COLUMNS = ("id", "study_id", "series_instance_uid", "modality", "series_number", "description",
                  "body_part", "station_name")  # fmt: skip
INSTANCE_COLUMNS = ("id", "series_id", "sop_instance_uid", "sop_class_uid", "instance_number", "rows",
                    "columns", "number_of_frames")  # fmt: skip
# Optional values a row may carry, read only when a query asks for them: "modalities" (a list),
# "series_count", "instance_count" (a study's or a series'), "study_count" (a patient's).

# The unique key of each level (PS3.4 C.6.1.1, C.6.2.1): answered at its level and below, asked
# or not, so that an answer always says which entity it is (C.4.1.2.1: hierarchical).
UNIQUE_KEYS = {
    Level.PATIENT: 0x00100020,  # Patient ID
    Level.STUDY: 0x0020000D,  # Study Instance UID
    Level.SERIES: 0x0020000E,  # Series Instance UID
    Level.IMAGE: 0x00080018,  # SOP Instance UID
}


def _da(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _tm(value: time | None) -> str:
    return value.strftime("%H%M%S") if value else ""


def _is(value: int | None) -> str | None:
    return None if value is None else str(value)


def patient_part(row: Row) -> Elements:
    """The patient attributes of a study's (or a patient's) row: the record's when linked."""
    if row["patient_id"] is not None:
        return patient_elements(row, weight=None)
    ds = Elements()
    ds.put("PatientName", row["dicom_patient_name"])
    ds.put("PatientID", row["dicom_patient_id"])
    ds.put("PatientBirthDate", _da(row["dicom_birth_date"]))
    ds.put("PatientSex", row["dicom_patient_sex"])
    ds.put("PatientSpeciesDescription", row["dicom_species"])
    ds.put("PatientBreedDescription", row["dicom_breed"])
    ds.put("PatientSexNeutered", row["dicom_sex_neutered"])
    ds.put("ResponsiblePerson", row["dicom_responsible_person"])
    ds.put("ResponsiblePersonRole", row["dicom_responsible_person_role"])
    return ds


def _study_part(ds: Elements, row: Row) -> None:
    ds.put("StudyInstanceUID", row["study_instance_uid"])
    ds.put("StudyDate", _da(row["study_date"]))
    ds.put("StudyTime", _tm(row["study_time"]))
    ds.put("AccessionNumber", row["accession_number"])
    ds.put("StudyID", row["study_id"])
    ds.put("StudyDescription", row["description"])
    ds.put("ReferringPhysicianName", row["referring_physician"])
    if "modalities" in row:
        ds.put("ModalitiesInStudy", "\\".join(row["modalities"]))
    if "series_count" in row:
        ds.put("NumberOfStudyRelatedSeries", str(row["series_count"]))
    if "instance_count" in row:
        ds.put("NumberOfStudyRelatedInstances", str(row["instance_count"]))


def _series_part(ds: Elements, row: Row) -> None:
    ds.put("SeriesInstanceUID", row["series_instance_uid"])
    ds.put("Modality", row["modality"])
    ds.put("SeriesNumber", _is(row["series_number"]))
    ds.put("SeriesDescription", row["description"])
    ds.put("BodyPartExamined", row["body_part"])
    ds.put("StationName", row["station_name"])
    if "instance_count" in row:
        ds.put("NumberOfSeriesRelatedInstances", str(row["instance_count"]))


def _instance_part(ds: Elements, row: Row) -> None:
    ds.put("SOPInstanceUID", row["sop_instance_uid"])
    ds.put("SOPClassUID", row["sop_class_uid"])
    ds.put("InstanceNumber", _is(row["instance_number"]))
    ds.put("Rows", row["rows"])  # US: a number (None when the object has no pixels)
    ds.put("Columns", row["columns"])
    ds.put("NumberOfFrames", _is(row["number_of_frames"]))


def answer_build(level: Level, answer: Answer, *, retrieve_ae_title: str) -> Elements:
    """Every attribute we hold for an answer at ``level``, with those of the levels above it."""
    if level is Level.PATIENT:
        row = answer[Level.PATIENT]
        ds = patient_part(row)
        for count, keyword in (("study_count", "NumberOfPatientRelatedStudies"),
                               ("series_count", "NumberOfPatientRelatedSeries"),
                               ("instance_count", "NumberOfPatientRelatedInstances")):  # fmt: skip
            if count in row:
                ds.put(keyword, str(row[count]))
    else:
        ds = patient_part(answer[Level.STUDY])
        _study_part(ds, answer[Level.STUDY])
        if level.depth >= Level.SERIES.depth:
            _series_part(ds, answer[Level.SERIES])
        if level is Level.IMAGE:
            _instance_part(ds, answer[Level.IMAGE])
    ds.put("QueryRetrieveLevel", level.value)
    # Where to retrieve it from: this node (PS3.4 C.4.1.1.3.2), and it is on line (C.6.1.1.5).
    ds.put("RetrieveAETitle", retrieve_ae_title)
    ds.put("InstanceAvailability", "ONLINE")
    return ds


def find_answer(
    keys: list[ResponseKey], level: Level, elements: Elements, transfer_syntax: str
) -> EncodedDataset | None:
    """``find_response`` encoded in the presentation context's transfer syntax, as the worklist's
    answers are (datasets.EncodedDataset: a sender may send the bytes as they are): directly for
    the little endian ones, by pydicom otherwise (None when it cannot encode it)."""
    answer = find_response(keys, level, elements)
    syntax = UID(transfer_syntax)
    if syntax.is_little_endian and not syntax.is_deflated:
        return EncodedDataset(answer.encode(implicit_vr=syntax.is_implicit_VR), syntax)
    encoded = encode(answer.dataset(), syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    return None if encoded is None else EncodedDataset(encoded, syntax)


def find_response(keys: list[ResponseKey], level: Level, elements: Elements) -> Elements:
    """The C-FIND response identifier: the keys the request named, with our values (or empty
    where we hold none) (PS3.4 C.4.1.1.3.2), Query/Retrieve Level, and the unique keys of the
    query level and above (C.4.1.2.1), asked or not (Patient ID only at the PATIENT level: the
    Study Root model has none above STUDY, and a Patient Root query below it names it anyway)."""
    answer = answer_elements(keys, elements)
    answer[QUERY_RETRIEVE_LEVEL] = ("CS", level.value)
    for entity in Level:
        if entity.depth > level.depth:
            break
        if entity is Level.PATIENT and level is not Level.PATIENT:
            continue
        tag = UNIQUE_KEYS[entity]
        if tag not in answer and tag in elements:
            answer[tag] = elements[tag]
    return answer


def sequence_keys_matched(identifier: Dataset) -> list[str]:
    """The sequence keys whose item gives a value to match on (PS3.4 C.2.2.2.6), at any depth.
    We match on no sequence (identifier_keys leaves them out): such a key is answered, never
    refused, and its answers say that a key was not matched (Pending FF01, C.4.1.1.4)."""
    keys = []
    for element in identifier:
        if element.VR != "SQ" or not element.value or not element.keyword:
            continue
        item = element.value[0]
        if any(
            (sub.VR == "SQ" and sequence_keys_matched(Dataset({sub.tag: sub})))
            or (sub.VR != "SQ" and sub.keyword and key_value(item, sub.keyword) is not None)
            for sub in item
        ):  # fmt: skip
            keys.append(element.keyword)
    return keys


def identifier_keys(identifier: Dataset) -> dict[str, str | None]:
    """A C-FIND identifier's keys as imaging/archive/query.py takes them: keyword -> matching
    value, None for universal matching (absent value, '*', C.2.2.2.3) and for sequence keys,
    which we answer but do not match on. Private and unknown tags are left out."""
    keys: dict[str, str | None] = {}
    for element in identifier:
        if (
            not element.keyword or element.tag.group in (0x0000, 0x0002) or element.tag.element == 0
        ):  # group lengths
            continue
        keys[element.keyword] = None if element.VR == "SQ" else key_value(identifier, element.keyword)
    return keys
