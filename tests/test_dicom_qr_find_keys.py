"""Query/Retrieve C-FIND keys on a real socket: a Study Date range with a Study Time range
(PS3.4 C.2.2.2.5.4: as one date-time range where the association agreed combined date-time
matching in the SOP Class Extended Negotiation, C.5.1.1; else each on its own), and sequence keys (C.2.2.2.6: universal matching
returns the whole sequence; a sequence we hold nothing for is answered empty; none makes a
query fail)."""

from datetime import date, time

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from imaging.archive.query import Query, archive_find
from imaging.dicom.records.query_answers import Level
from imaging.models import Modality
from tests.archive import archive  # noqa: F401  (a fixture)
from tests.studies import make_study

STUDY_ROOT, PATIENT_ROOT = (
    StudyRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelFind,
)


@pytest.fixture
def workstation(reference_data):
    return Modality.objects.create(ae_title="HOROS", host="127.0.0.1", modality_type="OT")


def associate(listener, *extended):
    """An association asking for the C-FIND options in ``extended`` ((SOP class, bytes) pairs)."""
    ae = AE(ae_title="HOROS")
    ae.add_requested_context(STUDY_ROOT)
    ae.add_requested_context(PATIENT_ROOT)
    items = []
    for sop_class, info in extended:
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid, item.service_class_application_information = sop_class, info
        items.append(item)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS", ext_neg=items or None)
    assert assoc.is_established
    return assoc


def find(assoc, model=STUDY_ROOT, **keys):
    """(status, error comment, answer) of each response."""
    query = Dataset()
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return [(s.Status, s.get("ErrorComment"), answer) for s, answer in assoc.send_c_find(query, model)]


def test_date_and_time_ranges_match_as_one_only_where_combined_matching_was_agreed(
    workstation, storage_root, dicom_listener
):
    when = {
        "before ten on the first day": (date(2025, 7, 5), time(9, 0)),
        "before ten on the second day": (date(2025, 7, 6), time(9, 0)),
        "noon on the second day": (date(2025, 7, 6), time(12, 0)),
        "five on the last day": (date(2025, 7, 7), time(17, 0)),
        "seven on the last day": (date(2025, 7, 7), time(19, 0)),
    }
    uids = {
        name: make_study(study_date=day, study_time=at).study_instance_uid for name, (day, at) in when.items()
    }

    def found(assoc, study_time="1000-1800"):
        answers = find(assoc, QueryRetrieveLevel="STUDY", StudyDate="20250705-20250707", StudyTime=study_time,
                       StudyInstanceUID="")  # fmt: skip
        assert answers[-1][:2] == (0x0000, None) and {s for s, _, _ in answers[:-1]} <= {0xFF00}
        names = {uid: name for name, uid in uids.items()}
        return {names[answer.StudyInstanceUID] for _, _, answer in answers[:-1]}

    each_day = {"noon on the second day", "five on the last day"}
    # Study Root asks for every option (five bytes), Patient Root for relational queries only (one).
    assoc = associate(dicom_listener, (STUDY_ROOT, b"\x01\x01\x01\x01\x01"), (PATIENT_ROOT, b"\x01"))
    try:
        # Combined date-time matching agreed (byte 2), the rest turned down, each field as long
        # as the one offered (PS3.4 C.5.1.1).
        assert assoc.acceptor.sop_class_extended == {
            STUDY_ROOT: b"\x00\x01\x00\x00\x00",
            PATIENT_ROOT: b"\x00",
        }
        # From 10:00 on the 5th to 18:00 on the 7th (C.2.2.2.5.4).
        assert found(assoc) == each_day | {"before ten on the second day"}
        # Not the same form of range ('A-B' and 'A-'): each on its own, from 10:00 on each day.
        assert found(assoc, study_time="1000-") == each_day | {"seven on the last day"}
    finally:
        assoc.release()
    # Not asked for: 10:00 to 18:00 on each of the days.
    for extended in [(), [(STUDY_ROOT, b"\x01\x00")]]:
        assoc = associate(dicom_listener, *extended)
        try:
            assert assoc.acceptor.sop_class_extended == ({STUDY_ROOT: b"\x00\x00"} if extended else {})
            assert found(assoc) == each_day
        finally:
            assoc.release()


@pytest.mark.django_db
def test_combined_matching_on_the_bounds_days_goes_by_the_time_and_open_ranges_work(storage_root, actor):
    """archive_find itself (the service under C-FIND): a study without a time matches on a day
    strictly inside the range, not on a bound's day, where the time decides; 'A-' with 'A-'."""
    at = {
        "first day, no time": (date(2025, 7, 5), None),
        "second day, no time": (date(2025, 7, 6), None),
        "second day 09:00": (date(2025, 7, 6), time(9, 0)),
        "second day 12:00": (date(2025, 7, 6), time(12, 0)),
        "last day 19:00": (date(2025, 7, 7), time(19, 0)),
    }
    names = {
        make_study(study_date=day, study_time=t).study_instance_uid: name for name, (day, t) in at.items()
    }

    def found(study_date, study_time):
        keys = {"StudyDate": study_date, "StudyTime": study_time, "StudyInstanceUID": None}
        result = archive_find(actor=actor, query=Query(level="STUDY", keys=keys, combined_datetime=True))
        return {names[answer[Level.STUDY]["study_instance_uid"]] for answer in result.answers}

    assert found("20250705-20250707", "1000-1800") == {
        "second day, no time",
        "second day 09:00",
        "second day 12:00",
    }
    assert found("20250706-", "1200-") == {"second day 12:00", "last day 19:00"}
    assert found("-20250706", "-1000") == {"first day, no time", "second day 09:00"}


@pytest.fixture
def stored(workstation, archive):  # noqa: F811
    return archive


def sequence(*items):
    """A sequence key: no item (a zero-length sequence), or the items given."""
    out = []
    for keys in items:
        item = Dataset()
        for keyword, value in keys.items():
            setattr(item, keyword, value)
        out.append(item)
    return out


def test_universal_matching_of_a_sequence_returns_the_whole_sequence(stored, dicom_listener):
    """A sequence we hold (the record's species code): a zero-length sequence, and a sequence
    with one empty item, both ask for the whole sequence (C.2.2.2.6); an item with keys asks
    for those keys of each item."""
    assoc = associate(dicom_listener)
    try:
        answers = {}
        for name, key in [
            ("zero length", sequence()), ("one empty item", sequence({})),
            ("item with a key", sequence({"CodeValue": ""})),
        ]:  # fmt: skip
            found = find(assoc, QueryRetrieveLevel="STUDY", StudyInstanceUID=stored.thorax,
                         PatientSpeciesCodeSequence=key)  # fmt: skip
            assert [status for status, _, _ in found] == [0xFF00, 0x0000], name
            answers[name] = found[0][2].PatientSpeciesCodeSequence
    finally:
        assoc.release()
    for name in ("zero length", "one empty item"):
        [code] = answers[name]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
            "448771007", "SCT", "Canis lupus familiaris",
        ), name  # fmt: skip
    [code] = answers["item with a key"]
    assert list(code.keys()) == [0x00080100] and code.CodeValue == "448771007"


@pytest.mark.parametrize(
    ("level", "model", "uid", "key"),
    [
        ("STUDY", STUDY_ROOT, "StudyInstanceUID", "ReferencedStudySequence"),
        ("STUDY", STUDY_ROOT, "StudyInstanceUID", "ProcedureCodeSequence"),
        ("STUDY", PATIENT_ROOT, "StudyInstanceUID", "AnatomicRegionsInStudyCodeSequence"),
        ("SERIES", STUDY_ROOT, "SeriesInstanceUID", "RequestAttributesSequence"),
        ("SERIES", STUDY_ROOT, "SeriesInstanceUID", "ReferencedPerformedProcedureStepSequence"),
        ("IMAGE", STUDY_ROOT, "SOPInstanceUID", "ReferencedImageSequence"),
        ("PATIENT", PATIENT_ROOT, "PatientID", "OtherPatientIDsSequence"),
    ],
)
def test_a_sequence_key_we_hold_nothing_for_is_answered_empty_and_never_fails(
    stored, dicom_listener, level, model, uid, key
):
    keys = {"QueryRetrieveLevel": level, uid: ""}
    if level in ("SERIES", "IMAGE"):
        keys["StudyInstanceUID"] = stored.thorax
    if level == "PATIENT":
        keys["PatientID"] = "EXT-9"  # the unlinked cat: its headers named no other IDs
    forms = {"zero length": sequence(), "one empty item": sequence({}),
             "item with return keys": sequence({"CodeValue": "", "PatientID": ""})}  # fmt: skip
    assoc = associate(dicom_listener)
    try:
        for form, value in forms.items():
            *pending, (final, comment, _) = find(assoc, model, **keys, **{key: value})
            assert (final, comment) == (0x0000, None), form
            assert pending and {status for status, _, _ in pending} == {0xFF00}, form
            for _, _, answer in pending:
                assert key in answer and answer[key].VR == "SQ" and len(answer[key].value) == 0, (
                    form,
                    answer,
                )
    finally:
        assoc.release()


def test_a_sequence_key_with_a_value_to_match_is_answered_with_pending_ff01(stored, dicom_listener):
    """We match on no sequence: an item key with a value is a key not matched (PS3.4 C.4.1.1.4:
    Pending FF01, optional keys not supported), the answers those of the other keys."""
    assoc = associate(dicom_listener)
    try:
        answers = find(assoc, QueryRetrieveLevel="STUDY", StudyInstanceUID=stored.thorax,
                       ProcedureCodeSequence=sequence({"CodeValue": "XRAY-1"}))  # fmt: skip
    finally:
        assoc.release()
    assert [status for status, _, _ in answers] == [0xFF01, 0x0000]
    assert answers[0][2].StudyInstanceUID == stored.thorax and len(answers[0][2].ProcedureCodeSequence) == 0
