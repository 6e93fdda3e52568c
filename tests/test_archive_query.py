"""The archive's query service without sockets (imaging/archive/query.py): the keys the C-FIND and
QIDO-RS tests do not reach, each matched on the record for a linked study and on the headers for
an unlinked one."""

import pytest
from django.db import connection

from imaging.archive.query import STUDIES_PAGE, Query, Root, archive_find
from imaging.dicom.records.matching import MatchingError
from imaging.dicom.records.query_answers import Level
from tests.archive import archive  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


def studies(actor, **keys):
    found = archive_find(actor=actor, query=Query(level="STUDY", keys=keys))
    return sorted(answer[Level.STUDY]["accession_number"] for answer in found.answers)


@pytest.mark.parametrize(
    "keys, accessions",
    [
        ({"ResponsiblePerson": "hartley^j*"}, ["A0900", "A1001"]),  # the record's owner, any case
        ({"ResponsiblePerson": "NG^MAI"}, ["B2002"]),  # the headers'
        ({"ResponsiblePersonRole": "OWNER"}, ["A0900", "A1001", "B2002"]),
        ({"PatientSexNeutered": "UNALTERED"}, ["B2002"]),
        ({"PatientSex": "F"}, ["A0900", "A1001"]),
        ({"PatientID": "PX-1\\EXT-9"}, []),  # PatientID is LO: a backslash is no list (C.2.2.2.2 is UIDs')
        ({"PatientID": "EXT-?"}, ["B2002"]),
        ({"StudyTime": "10-1059"}, ["A1001"]),  # 10:15:00 within 10:00:00-10:59:59
        ({"StudyDate": "-20241231"}, ["A0900"]),
        ({"ModalitiesInStudy": "US\\DX"}, ["A0900", "B2002"]),
        ({"ModalitiesInStudy": "C?"}, ["A1001"]),
        ({"StudyDescription": "Thorax*"}, ["A1001", "B2002"]),
        ({"PatientName": "*^TIDDLES"}, ["B2002"]),
    ],
)
def test_each_key_matches_the_record_or_the_headers(archive, actor, keys, accessions):  # noqa: F811
    assert studies(actor, **keys) == accessions


@pytest.mark.parametrize("compile_once", [True, False])
def test_a_study_search_of_one_shape_answers_each_querys_own_values(archive, actor, settings, compile_once):  # noqa: F811
    """A study search's statement is compiled once per shape (the keys given, the kind of each
    value, the page) and run with each query's values (query.STUDIES_PAGE, vetclinic/db.py): each
    query answers as its own, compiled or not."""
    settings.DATABASE_COMPILE_ONCE = compile_once
    STUDIES_PAGE._shapes.clear()
    searches = [
        ({"PatientName": "HART*", "StudyDate": "20250101-20251231", "ModalitiesInStudy": "CT"}, ["A1001"]),
        ({"PatientName": "ng*", "StudyDate": "20250101-20251231", "ModalitiesInStudy": "DX"}, ["B2002"]),
        ({"PatientName": "HART*", "StudyDate": "20240101-20241231", "ModalitiesInStudy": "US"}, ["A0900"]),
        ({"PatientName": "HART*", "StudyDate": "20240101-20241231", "ModalitiesInStudy": "CT\\DX"}, []),
        ({"PatientName": "NG*", "StudyDate": "20240101-20251231", "ModalitiesInStudy": "CT\\DX"}, ["B2002"]),
        ({"StudyTime": "1000-1100", "StudyInstanceUID": f"{archive.thorax}\\{archive.cat}"}, ["A1001"]),
        ({"StudyTime": "0900-0959", "StudyInstanceUID": f"{archive.thorax}\\{archive.cat}"}, []),
        ({"StudyTime": "10-", "StudyInstanceUID": archive.thorax}, ["A1001"]),
        ({"PatientName": "H?RTLEY*", "PatientSex": "F"}, ["A0900", "A1001"]),
        ({"PatientName": "N?*", "PatientSex": "F"}, []),
    ]
    for keys, accessions in searches:
        assert studies(actor, **keys, NumberOfStudyRelatedSeries=None) == accessions, keys
    # With the counts, read in the same statement: the thorax CT's two series of 2 and 1 images.
    found = archive_find(actor=actor, query=Query(level="STUDY", keys={"AccessionNumber": "A1001",
                                                                       "ModalitiesInStudy": None}))  # fmt: skip
    [row] = [answer[Level.STUDY] for answer in found.answers]
    assert (row["modalities"], row["series_count"], row["instance_count"]) == (["CT"], 2, 3)
    shapes = list(STUDIES_PAGE._shapes.values())
    if compile_once and connection.vendor == "postgresql":
        # One statement for each shape, none run as a plain queryset (dates are compiled on
        # PostgreSQL; SQLite's adapter turns them into strings first).
        assert len(shapes) == 5 and all(shapes)
    else:
        assert len(shapes) == (5 if compile_once else 0)


def test_relational_series_and_instance_queries_and_their_counts(archive, actor):  # noqa: F811
    found = archive_find(actor=actor, query=Query(level="SERIES", keys={"PatientName": "HARTLEY*", "SeriesNumber": "2",
                                                                        "NumberOfSeriesRelatedInstances": None}))  # fmt: skip
    assert [
        (a[Level.SERIES]["series_instance_uid"], a[Level.SERIES]["instance_count"]) for a in found.answers
    ] == [(archive.series[1], 1)]
    found = archive_find(
        actor=actor, query=Query(level="IMAGE", keys={"ModalitiesInStudy": "CT", "InstanceNumber": "2"})
    )
    assert [a[Level.SERIES]["series_instance_uid"] for a in found.answers] == [archive.series[0]]


def test_limit_offset_and_more(archive, actor):  # noqa: F811
    found = archive_find(actor=actor, query=Query(level="STUDY", keys={}, limit=2, offset=0))
    assert len(found.answers) == 2 and found.more
    found = archive_find(actor=actor, query=Query(level="STUDY", keys={}, limit=2, offset=2))
    assert len(found.answers) == 1 and not found.more


def test_the_patient_level_counts_and_keys_not_matched(archive, actor):  # noqa: F811
    keys = {
        "PatientName": None,
        "NumberOfPatientRelatedSeries": None,
        "OperatorsName": "x",
        "SpecificCharacterSet": "ISO_IR 100",
    }
    found = archive_find(actor=actor, query=Query(level="PATIENT", keys=keys, root=Root.PATIENT))
    assert sorted(a[Level.PATIENT]["series_count"] for a in found.answers) == [1, 3]
    assert found.unsupported == ["OperatorsName"]


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"SeriesNumber": "two"}, "SeriesNumber: 'two' is not an integer"),
        ({"StudyTime": "25"}, "StudyTime: '25' is not a time"),
        ({"PatientBirthDate": "2020"}, "PatientBirthDate: '2020' is not a date"),
    ],
)
def test_a_malformed_value_names_its_key(archive, actor, keys, message):  # noqa: F811
    with pytest.raises(MatchingError) as error:
        archive_find(actor=actor, query=Query(level="IMAGE", keys=keys))
    assert str(error.value) == message
