"""What the index reads from a received object's header (dataset -> record): the summary that
ingest indexes (imaging/ingest/index.py), and the dates in it."""

from datetime import date, datetime, time
from typing import TypedDict

from pydicom.dataset import Dataset


class HeaderSummary(TypedDict):
    """One instance's header as the index needs it: JSON-safe, as it travels to the ingest task."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    accession_number: str
    study_date: str
    study_time: str
    study_description: str
    referring_physician: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    species: str
    # Read since Query/Retrieve (absent from messages queued before): index.py reads them with .get.
    study_id: str
    patient_sex: str
    breed: str
    sex_neutered: str
    responsible_person: str
    responsible_person_role: str
    modality: str
    series_number: int | None
    series_description: str
    body_part: str
    station_name: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int


def _text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    value = ds.get(keyword)
    return str(value).strip()[:limit] if value not in (None, "") else ""


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _date(value: str) -> date | None:
    try:
        return datetime.strptime(str(value).strip()[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None


def _time(value: str) -> time | None:
    text = str(value or "").strip().split(".")[0].replace(":", "")
    try:
        return time(int(text[0:2]), int(text[2:4] or 0), int(text[4:6] or 0)) if len(text) >= 2 else None
    except ValueError:
        return None


def species_text(ds: Dataset) -> str:
    """The species the images name: description (0010,2201) or the code's meaning (0010,2202)."""
    if ds.get("PatientSpeciesDescription"):
        return str(ds.PatientSpeciesDescription).strip()
    sequence = ds.get("PatientSpeciesCodeSequence")
    if sequence:
        return str(sequence[0].get("CodeMeaning", "") or sequence[0].get("CodeValue", "")).strip()
    return ""


def header_summary(ds: Dataset, *, transfer_syntax_uid: str) -> HeaderSummary:
    """What the index needs from one instance, as JSON-safe values (sent to the ingest task)."""
    return {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "sop_class_uid": str(ds.SOPClassUID),
        "transfer_syntax_uid": str(transfer_syntax_uid),
        "accession_number": _text(ds, "AccessionNumber", 16),
        "study_date": _text(ds, "StudyDate", 8),
        "study_time": _text(ds, "StudyTime", 16),
        "study_description": _text(ds, "StudyDescription"),
        "referring_physician": _text(ds, "ReferringPhysicianName"),
        "patient_id": _text(ds, "PatientID"),
        "patient_name": _text(ds, "PatientName"),
        "patient_birth_date": _text(ds, "PatientBirthDate", 8),
        "species": species_text(ds)[:64],
        "study_id": _text(ds, "StudyID", 16),
        "patient_sex": _text(ds, "PatientSex", 16),
        "breed": _text(ds, "PatientBreedDescription"),
        "sex_neutered": _text(ds, "PatientSexNeutered", 16),
        "responsible_person": _text(ds, "ResponsiblePerson"),
        "responsible_person_role": _text(ds, "ResponsiblePersonRole", 16),
        "modality": _text(ds, "Modality", 16),
        "series_number": _int(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription"),
        "body_part": _text(ds, "BodyPartExamined"),
        "station_name": _text(ds, "StationName", 16),
        "instance_number": _int(ds, "InstanceNumber"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "number_of_frames": _int(ds, "NumberOfFrames") or 1,
    }


def summary_dates(summary: HeaderSummary) -> tuple[date | None, time | None]:
    """The study's date and time as Python values (DA, TM: PS3.5 6.2)."""
    return _date(summary["study_date"]), _time(summary["study_time"])


def birth_date(summary: HeaderSummary) -> date | None:
    return _date(summary["patient_birth_date"])
