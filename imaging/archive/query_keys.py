"""The Query/Retrieve keys we match on (PS3.4 C.6.1.1, C.6.2.1: the required and unique keys of
each level, and the optional ones people use, the veterinary patient attributes among them), each
as a condition the database answers, built from the C-FIND matching primitives the worklist uses
(imaging/dicom/records/matching.py, PS3.4 C.2.2.2).

Patient attributes are matched twice: on the animal's record (Patient, for a linked study) and on
what the headers said (Study.dicom_*, for an unlinked one), as query.py combines them, because a
linked study answers with the record's attributes (query_answers.patient_part).
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Concat, Upper

from imaging.dicom.records.matching import (
    MatchingError,
    between,
    date_bound,
    date_time_between,
    has_wildcard,
    integer_value,
    literal_matches,
    person_name_pattern,
    range_form,
    text_condition,
    text_pattern,
    time_bound,
    uids_of,
    value_range,
    values_of,
)
from imaging.dicom.records.query_answers import Level
from imaging.models import Series
from patients.models import Owner, Ownership
from vetclinic.db import AnyOf

# A key's value as read once (MatchingError when it cannot be): (its shape, what makes the
# condition's text; its values, the condition's parameters: strings, dates, times, numbers, a
# list of UIDs, None for an open end). query.py compiles a study search's statement once per
# shape and runs it with the values (vetclinic/db.py), so a condition never reads the value's
# text again: only its parts.
Parsed = tuple[Hashable, tuple[Any, ...]]


@dataclass(frozen=True)
class Key:
    """A key matched on its level's model (Study, Series or Instance)."""

    parse: Callable[[str], Parsed]
    condition: Callable[[Any, tuple[Any, ...]], Q]

    def match(self, value: str) -> Q:
        return self.condition(*self.parse(value))


@dataclass(frozen=True)
class PatientKey:
    """A patient key: (the condition on Patient, the condition on an unlinked Study's headers)."""

    parse: Callable[[str], Parsed]
    condition: Callable[[Any, tuple[Any, ...]], tuple[Q, Q]]

    def match(self, value: str) -> tuple[Q, Q]:
        return self.condition(*self.parse(value))


def _text(field: str, *, case_insensitive: bool = False) -> Key:
    """Single value or wildcard matching (matching.text_pattern)."""
    return Key(
        text_pattern,
        lambda kind, parts: text_condition(field, kind, parts, case_insensitive=case_insensitive),
    )


def _person_name(field: str) -> Key:
    """A PN key: case-insensitive, trailing empty components not significant (C.2.2.2.1)."""
    return Key(
        lambda v: text_pattern(person_name_pattern(v)),
        lambda kind, parts: text_condition(field, kind, parts, case_insensitive=True),
    )


def _range(field: str, keyword: str, bound: Any) -> Key:
    """Single value or range matching of a date or time (C.2.2.2.5): the two ends, None if open."""
    return Key(lambda v: ("range", value_range(v, bound, keyword)), lambda _, ends: between(field, *ends))


def _uids(field: str, keyword: str) -> Key:
    """List of UID matching (C.2.2.2.2): the list one parameter (AnyOf)."""
    return Key(lambda v: ("uids", (uids_of(v, keyword),)), lambda _, uids: Q(AnyOf(F(field), uids[0])))


def _integer(field: str, keyword: str) -> Key:
    return Key(lambda v: ("integer", (integer_value(v, keyword),)), lambda _, value: Q(**{field: value[0]}))


def _both(record: Key, headers: Key) -> PatientKey:
    """A patient key whose value reads the same for the record and the headers."""
    return PatientKey(
        record.parse,
        lambda shape, values: (record.condition(shape, values), headers.condition(shape, values)),
    )


def _name(value: str) -> str:
    return person_name_pattern(value).upper()


def _person_owner() -> Exists:
    """The animal has a person (not an organisation) as its primary owner: its Responsible Person."""
    return Exists(
        Ownership.objects.filter(patient=OuterRef("pk"), is_primary=True, owner__kind=Owner.Kind.PERSON)
    )


def _patient_name() -> PatientKey:
    """PatientName: both sides are kept in capitals (Patient.dicom_name_key, Study.dicom_name_key),
    so a name matches case-insensitively (C.2.2.2.1) on an index."""
    key = Key(
        lambda v: text_pattern(_name(v)), lambda kind, parts: text_condition("dicom_name_key", kind, parts)
    )
    return _both(key, key)


def _responsible_person_parse(value: str) -> Parsed:
    (record_kind, record_parts), (headers_kind, headers_parts) = (
        text_pattern(_name(value)), text_pattern(person_name_pattern(value))
    )  # fmt: skip
    return (record_kind, headers_kind), (record_parts, headers_parts)


def _responsible_person(kinds: tuple[str, str], parts: tuple[Any, ...]) -> tuple[Q, Q]:
    """ResponsiblePerson (0010,2297), PN: on the record, the primary owner's ``Family^Given``
    (datasets.patient_elements writes it so), in capitals as person names match (C.2.2.2.1)."""
    owners = (
        Ownership.objects.filter(patient=OuterRef("pk"), is_primary=True, owner__kind=Owner.Kind.PERSON)
        .alias(person=Upper(Concat(F("owner__family_name"), Value("^"), F("owner__given_name"))))
        .filter(text_condition("person", kinds[0], parts[0]))
    )
    return Q(Exists(owners)), text_condition(
        "dicom_responsible_person", kinds[1], parts[1], case_insensitive=True
    )


def _responsible_role_parse(value: str) -> Parsed:
    kind, parts = text_pattern(value)
    return (kind, literal_matches(value, "OWNER")), parts


def _responsible_role(shape: tuple[str, bool], parts: tuple[Any, ...]) -> tuple[Q, Q]:
    """ResponsiblePersonRole (0010,2298): the record says OWNER whenever it names a Responsible
    Person (the role is 1C on it, datasets.patient_elements), nothing otherwise."""
    kind, owner = shape
    record = Q(_person_owner()) if owner else Q(pk__in=[])
    return record, text_condition("dicom_responsible_person_role", kind, parts)


def _breed(kind: str, parts: tuple[Any, ...]) -> tuple[Q, Q]:
    """PatientBreedDescription (0010,2292): the coded breed's name, else the free text, as the
    record answers it (datasets.patient_elements)."""
    record = Q(breed__isnull=False) & text_condition("breed__name", kind, parts)
    record |= Q(breed__isnull=True) & text_condition("breed_text", kind, parts)
    return record, text_condition("dicom_breed", kind, parts)


PATIENT_KEYS: dict[str, PatientKey] = {
    "PatientName": _patient_name(),
    "PatientID": _both(_text("patient_id"), _text("dicom_patient_id")),
    "PatientBirthDate": _both(_range("birth_date", "PatientBirthDate", date_bound),
                              _range("dicom_birth_date", "PatientBirthDate", date_bound)),
    "PatientSex": _both(_text("sex"), _text("dicom_patient_sex")),
    "PatientSpeciesDescription": _both(_text("species__meaning"), _text("dicom_species")),
    "PatientBreedDescription": PatientKey(text_pattern, _breed),
    "PatientSexNeutered": _both(_text("neutered"), _text("dicom_sex_neutered")),
    "ResponsiblePerson": PatientKey(_responsible_person_parse, _responsible_person),
    "ResponsiblePersonRole": PatientKey(_responsible_role_parse, _responsible_role),
}  # fmt: skip


def _modalities_parse(value: str) -> Parsed:
    modalities = values_of(value)
    if not any(has_wildcard(m) for m in modalities):
        return "list", (modalities,)
    patterns = [text_pattern(m) for m in modalities]
    return tuple(kind for kind, _ in patterns), tuple(parts for _, parts in patterns)


def _modalities(shape: Any, values: tuple[Any, ...]) -> Q:
    """ModalitiesInStudy (0008,0061): a study matches when one of its series has one of the
    modalities listed (PS3.4 C.6.2.1.2), each value a single value or a wildcard."""
    if shape == "list":
        series = Q(AnyOf(F("modality"), values[0]))
    else:
        series = Q()
        for kind, parts in zip(shape, values, strict=True):
            series |= text_condition("modality", kind, parts)
    return Q(Exists(Series.objects.filter(series, study=OuterRef("pk"))))


# Study Date and Study Time matched as one date-time range (date_time_combined): not a DICOM
# keyword, so no identifier or QIDO-RS parameter can name it.
STUDY_DATE_TIME = "StudyDate|StudyTime"


def _study_date_time_parse(value: str) -> Parsed:
    date_text, time_text = value.split("|")
    dates = value_range(date_text, date_bound, "StudyDate")
    times = value_range(time_text, time_bound, "StudyTime")
    return "datetime", (dates, times)


def _study_date_time(_: Any, ends: tuple[Any, ...]) -> Q:
    return date_time_between("study_date", "study_time", *ends)


def date_time_combined(matched: dict[str, str]) -> dict[str, str]:
    """The matching keys with a Study Date range and a Study Time range of the same form ('A-B',
    'A-', '-B') made one date-time range (PS3.4 C.2.2.2.5.4, for an association that agreed
    combined date-time matching, C.5.1.1); anything else as it was."""
    date_text, time_text = matched.get("StudyDate"), matched.get("StudyTime")
    if date_text is None or time_text is None or range_form(date_text) is None:
        return matched
    if range_form(date_text) != range_form(time_text):
        return matched
    combined = {k: v for k, v in matched.items() if k not in ("StudyDate", "StudyTime")}
    combined[STUDY_DATE_TIME] = f"{date_text}|{time_text}"
    return combined


STUDY_KEYS: dict[str, Key] = {
    "StudyInstanceUID": _uids("study_instance_uid", "StudyInstanceUID"),
    "StudyDate": _range("study_date", "StudyDate", date_bound),
    "StudyTime": _range("study_time", "StudyTime", time_bound),
    "AccessionNumber": _text("accession_number"),
    "StudyID": _text("study_id"),
    "StudyDescription": _text("description"),
    "ReferringPhysicianName": _person_name("referring_physician"),
    "ModalitiesInStudy": Key(_modalities_parse, _modalities),
    STUDY_DATE_TIME: Key(_study_date_time_parse, _study_date_time),
}
SERIES_KEYS: dict[str, Key] = {
    "SeriesInstanceUID": _uids("series_instance_uid", "SeriesInstanceUID"),
    "Modality": _text("modality"),
    "SeriesNumber": _integer("series_number", "SeriesNumber"),
    "SeriesDescription": _text("description"),
    "BodyPartExamined": _text("body_part"),
    "StationName": _text("station_name"),
}
IMAGE_KEYS: dict[str, Key] = {
    "SOPInstanceUID": _uids("sop_instance_uid", "SOPInstanceUID"),
    "SOPClassUID": _uids("sop_class_uid", "SOPClassUID"),
    "InstanceNumber": _integer("instance_number", "InstanceNumber"),
}

# Keys we answer but do not match on, by the level they belong to: a value given for one of them
# is answered with Pending 0xFF01, "optional keys not supported" (PS3.4 C.4.1.1.4).
RETURNED_ONLY = {
    Level.PATIENT: {"PatientSpeciesCodeSequence", "PatientBreedCodeSequence", "BreedRegistrationSequence",
                    "ResponsibleOrganization", "OtherPatientIDsSequence", "NumberOfPatientRelatedStudies",
                    "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances"},
    Level.STUDY: {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"},
    Level.SERIES: {"NumberOfSeriesRelatedInstances"},
    Level.IMAGE: {"Rows", "Columns", "NumberOfFrames"},
}  # fmt: skip
# Keys of no level: query control and what every answer carries (C.4.1.1.3.2).
ANY_LEVEL = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability",
             "TimezoneOffsetFromUTC", "RetrieveURL"}  # fmt: skip
KEY_LEVEL: dict[str, Level] = {
    **dict.fromkeys([*PATIENT_KEYS, *RETURNED_ONLY[Level.PATIENT]], Level.PATIENT),
    **dict.fromkeys([*STUDY_KEYS, *RETURNED_ONLY[Level.STUDY]], Level.STUDY),
    **dict.fromkeys([*SERIES_KEYS, *RETURNED_ONLY[Level.SERIES]], Level.SERIES),
    **dict.fromkeys([*IMAGE_KEYS, *RETURNED_ONLY[Level.IMAGE]], Level.IMAGE),
}


def key_check(keyword: str, value: str | None, level: Level, *, patient_root: bool) -> bool:
    """Whether ``keyword`` may be asked at ``level``; True when it is matched there, False when
    it is only answered. A key with a value at a level below the query's cannot be matched:
    MatchingError (PS3.4 C.4.1.2.1: the keys of the query level and the unique keys above it).
    In the Study Root model the patient's attributes are the study's (C.6.2)."""
    entity = KEY_LEVEL.get(keyword)
    if entity is None or keyword in ANY_LEVEL:
        return False
    if entity is Level.PATIENT and not patient_root:
        entity = Level.STUDY
    if entity.depth > level.depth:
        if value is not None:
            raise MatchingError(f"{keyword}: a key of the {entity} level, below {level}")
        return False
    return keyword not in RETURNED_ONLY[KEY_LEVEL[keyword]]
