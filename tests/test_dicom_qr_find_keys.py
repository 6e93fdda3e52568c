"""Query/Retrieve C-FIND keys on a real socket: a Study Date range with a Study Time range
(PS3.4 C.2.2.2.5.4: matched each on its own, since we turn down combined date-time matching in
the SOP Class Extended Negotiation, C.5.1.1), and sequence keys (C.2.2.2.6: universal matching
returns the whole sequence; a sequence we hold nothing for is answered empty; none makes a
query fail). Run with the fast path on and off (Makefile FAST_PATH_OFF_TESTS)."""

from datetime import date, time

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

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


def test_combined_date_time_matching_is_turned_down_and_date_and_time_ranges_match_each_on_its_own(
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
    # Study Root asks for every option (five bytes), Patient Root for relational queries only (one).
    assoc = associate(dicom_listener, (STUDY_ROOT, b"\x01\x01\x01\x01\x01"), (PATIENT_ROOT, b"\x01"))
    try:
        # Each option turned down (0), in a field as long as the one offered (PS3.4 C.5.1.1).
        assert assoc.acceptor.sop_class_extended == {STUDY_ROOT: bytes(5), PATIENT_ROOT: bytes(1)}
        answers = find(
            assoc, QueryRetrieveLevel="STUDY", StudyDate="20250705-20250707", StudyTime="1000-1800",
            StudyInstanceUID="",
        )  # fmt: skip
    finally:
        assoc.release()
    assert [status for status, _, _ in answers] == [0xFF00, 0xFF00, 0x0000]
    # 10:00 to 18:00 on each day, not from 10:00 on the 5th to 18:00 on the 7th (which would
    # take the second day's 09:00 study too).
    found = {answer.StudyInstanceUID for _, _, answer in answers[:-1]}
    assert found == {uids["noon on the second day"], uids["five on the last day"]}


def test_without_extended_negotiation_nothing_is_answered_for_it(workstation, storage_root, dicom_listener):
    assoc = associate(dicom_listener)
    try:
        assert assoc.acceptor.sop_class_extended == {}
    finally:
        assoc.release()


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
