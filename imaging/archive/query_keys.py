"""The Query/Retrieve keys we match on (PS3.4 C.6.1.1, C.6.2.1: the required and unique keys of
each level, and the optional ones people use, the veterinary patient attributes among them), each
as a condition the database answers, built from the C-FIND matching primitives the worklist uses
(imaging/dicom/records/matching.py, PS3.4 C.2.2.2).

Patient attributes are matched twice: on the animal's record (Patient, for a linked study) and on
what the headers said (Study.dicom_*, for an unlinked one), as query.py combines them, because a
linked study answers with the record's attributes (query_answers.patient_part).
"""

from collections.abc import Callable

from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Concat, Upper

from imaging.dicom.records.matching import (
    MatchingError,
    date_match,
    date_time_match,
    has_wildcard,
    integer_match,
    literal_matches,
    person_name_pattern,
    range_form,
    text_match,
    time_match,
    uid_list,
    values_of,
)
from imaging.dicom.records.query_answers import Level
from imaging.models import Series
from patients.models import Owner, Ownership

# A patient key's value -> (the condition on Patient, the condition on an unlinked Study's headers).
PatientMatch = Callable[[str], tuple[Q, Q]]
# A key's value -> the condition on its level's model (Study, Series or Instance).
Match = Callable[[str], Q]


def _name(value: str) -> str:
    return person_name_pattern(value).upper()


def _person_owner() -> Exists:
    """The animal has a person (not an organisation) as its primary owner: its Responsible Person."""
    return Exists(
        Ownership.objects.filter(patient=OuterRef("pk"), is_primary=True, owner__kind=Owner.Kind.PERSON)
    )


def _responsible_person(value: str) -> tuple[Q, Q]:
    """ResponsiblePerson (0010,2297), PN: on the record, the primary owner's ``Family^Given``
    (datasets.patient_elements writes it so), in capitals as person names match (C.2.2.2.1)."""
    owners = (
        Ownership.objects.filter(patient=OuterRef("pk"), is_primary=True, owner__kind=Owner.Kind.PERSON)
        .alias(person=Upper(Concat(F("owner__family_name"), Value("^"), F("owner__given_name"))))
        .filter(text_match("person", _name(value)))
    )
    return Q(Exists(owners)), text_match(
        "dicom_responsible_person", person_name_pattern(value), case_insensitive=True
    )


def _responsible_role(value: str) -> tuple[Q, Q]:
    """ResponsiblePersonRole (0010,2298): the record says OWNER whenever it names a Responsible
    Person (the role is 1C on it, datasets.patient_elements), nothing otherwise."""
    record = Q(_person_owner()) if literal_matches(value, "OWNER") else Q(pk__in=[])
    return record, text_match("dicom_responsible_person_role", value)


def _breed(value: str) -> tuple[Q, Q]:
    """PatientBreedDescription (0010,2292): the coded breed's name, else the free text, as the
    record answers it (datasets.patient_elements)."""
    record = Q(breed__isnull=False) & text_match("breed__name", value)
    record |= Q(breed__isnull=True) & text_match("breed_text", value)
    return record, text_match("dicom_breed", value)


PATIENT_KEYS: dict[str, PatientMatch] = {
    # Person names match case-insensitively (C.2.2.2.1): both keys are kept in capitals.
    "PatientName": lambda v: (text_match("dicom_name_key", _name(v)), text_match("dicom_name_key", _name(v))),
    "PatientID": lambda v: (text_match("patient_id", v), text_match("dicom_patient_id", v)),
    "PatientBirthDate": lambda v: (date_match("birth_date", v, "PatientBirthDate"),
                                   date_match("dicom_birth_date", v, "PatientBirthDate")),
    "PatientSex": lambda v: (text_match("sex", v), text_match("dicom_patient_sex", v)),
    "PatientSpeciesDescription": lambda v: (text_match("species__meaning", v), text_match("dicom_species", v)),
    "PatientBreedDescription": _breed,
    "PatientSexNeutered": lambda v: (text_match("neutered", v), text_match("dicom_sex_neutered", v)),
    "ResponsiblePerson": _responsible_person,
    "ResponsiblePersonRole": _responsible_role,
}  # fmt: skip


def _modalities(value: str) -> Q:
    """ModalitiesInStudy (0008,0061): a study matches when one of its series has one of the
    modalities listed (PS3.4 C.6.2.1.2), each value a single value or a wildcard."""
    modalities = values_of(value)
    if not any(has_wildcard(m) for m in modalities):
        series = Q(modality__in=modalities)
    else:
        series = Q()
        for modality in modalities:
            series |= text_match("modality", modality)
    return Q(Exists(Series.objects.filter(series, study=OuterRef("pk"))))


# Study Date and Study Time matched as one date-time range (date_time_combined): not a DICOM
# keyword, so no identifier or QIDO-RS parameter can name it.
STUDY_DATE_TIME = "StudyDate|StudyTime"


def _study_date_time(value: str) -> Q:
    date_text, time_text = value.split("|")
    return date_time_match(
        "study_date", "study_time", date_text, time_text, keywords=("StudyDate", "StudyTime")
    )


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


STUDY_KEYS: dict[str, Match] = {
    "StudyInstanceUID": lambda v: uid_list("study_instance_uid", v, "StudyInstanceUID"),
    "StudyDate": lambda v: date_match("study_date", v, "StudyDate"),
    "StudyTime": lambda v: time_match("study_time", v, "StudyTime"),
    "AccessionNumber": lambda v: text_match("accession_number", v),
    "StudyID": lambda v: text_match("study_id", v),
    "StudyDescription": lambda v: text_match("description", v),
    "ReferringPhysicianName": lambda v: text_match("referring_physician", person_name_pattern(v),
                                                   case_insensitive=True),
    "ModalitiesInStudy": _modalities,
    STUDY_DATE_TIME: _study_date_time,
}  # fmt: skip
SERIES_KEYS: dict[str, Match] = {
    "SeriesInstanceUID": lambda v: uid_list("series_instance_uid", v, "SeriesInstanceUID"),
    "Modality": lambda v: text_match("modality", v),
    "SeriesNumber": lambda v: integer_match("series_number", v, "SeriesNumber"),
    "SeriesDescription": lambda v: text_match("description", v),
    "BodyPartExamined": lambda v: text_match("body_part", v),
    "StationName": lambda v: text_match("station_name", v),
}
IMAGE_KEYS: dict[str, Match] = {
    "SOPInstanceUID": lambda v: uid_list("sop_instance_uid", v, "SOPInstanceUID"),
    "SOPClassUID": lambda v: uid_list("sop_class_uid", v, "SOPClassUID"),
    "InstanceNumber": lambda v: integer_match("instance_number", v, "InstanceNumber"),
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
