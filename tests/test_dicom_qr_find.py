"""Query/Retrieve C-FIND on a real socket (PS3.4 C.6): dcmtk's findscu -S and -P at each level as a
workstation asks, pynetdicom for C-CANCEL and the failure statuses. Run with the fast path on and
off (Makefile FAST_PATH_OFF_TESTS)."""

import subprocess
import types

import pytest
from django.db import OperationalError
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from imaging.dicom.net import handlers_query
from imaging.dicom.net.ae import ae_build, server_start
from imaging.models import Modality, Study
from tests.archive import archive  # noqa: F401  (a fixture)
from tests.conftest import tool_required
from vetclinic.audit.models import AuditEntry

FINDSCU = "/usr/bin/findscu"  # .venv/bin has pynetdicom's findscu under the same name
STUDY_ROOT, PATIENT_ROOT = (
    StudyRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelFind,
)


@pytest.fixture
def nodes(reference_data):
    """A workstation that may query, and a modality that may only store."""
    return {
        "HOROS": Modality.objects.create(ae_title="HOROS", host="127.0.0.1", modality_type="OT"),
        "DRROOM": Modality.objects.create(
            ae_title="DRROOM", host="127.0.0.1", modality_type="DX", may_query=False
        ),
    }


@pytest.fixture
def stored(nodes, archive):  # noqa: F811
    return archive


def findscu(listener, tmp_path, model, *keys, calling="HOROS"):
    """dcmtk's findscu (-S Study Root, -P Patient Root); (exit code, output, the answers)."""
    tool_required(FINDSCU)
    out = tmp_path / f"rsp-{len(list(tmp_path.glob('rsp-*')))}"
    out.mkdir()
    args = [FINDSCU, model, "-X", "-od", str(out), "-aet", calling, "-aec", "VETPACS", "127.0.0.1",
            str(listener.port)]  # fmt: skip
    given = {key.split("=")[0] for key in keys if "=" in key}
    for key in keys:
        if "=" in key or key not in given:  # a later bare key would empty one given a value
            args += ["-k", key]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr, [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


VET_KEYS = ["PatientName", "PatientID", "PatientSpeciesDescription", "PatientBreedDescription",
            "PatientSexNeutered", "ResponsiblePerson", "ResponsiblePersonRole"]  # fmt: skip


def test_a_study_search_by_name_wildcard_date_range_and_modality_answers_from_the_record(
    stored, dicom_listener, tmp_path
):
    code, output, found = findscu(
        dicom_listener, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientName=hart*",
        "StudyDate=20250101-20251231", "ModalitiesInStudy=CT", "StudyInstanceUID", "AccessionNumber",
        "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", *VET_KEYS,
    )  # fmt: skip
    assert code == 0, output
    assert [ds.StudyInstanceUID for ds in found] == [stored.thorax], output
    study = found[0]
    # The record's attributes, not the headers' (which said HARTLEY^BISCUIT and Beagle).
    assert str(study.PatientName) == "Hartley^Biscuit" and study.PatientID == "PX-1"
    assert study.PatientSpeciesDescription == "Canis lupus familiaris"
    assert study.PatientBreedDescription == "Labrador retriever"
    assert study.PatientSexNeutered == "ALTERED"
    assert (str(study.ResponsiblePerson), study.ResponsiblePersonRole) == ("Hartley^Jo", "OWNER")
    assert (study.ModalitiesInStudy, study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (
        "CT", 2, 3,
    )  # fmt: skip
    assert study.QueryRetrieveLevel == "STUDY" and study.AccessionNumber == "A1001"
    entry = AuditEntry.objects.get(action="query", actor="HOROS")
    assert entry.channel == "dicom" and entry.changes["level"] == [None, "STUDY"]
    assert entry.changes["answers"] == [None, 1] and "PatientName=hart*" in entry.changes["keys"][1]


def test_an_unlinked_study_answers_and_matches_with_what_its_headers_said(stored, dicom_listener, tmp_path):
    _, output, found = findscu(
        dicom_listener, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientSpeciesDescription=Felis*",
        "StudyInstanceUID", *VET_KEYS,
    )  # fmt: skip
    assert [ds.StudyInstanceUID for ds in found] == [stored.cat], output
    cat = found[0]
    assert (str(cat.PatientName), cat.PatientBreedDescription, cat.PatientSexNeutered) == (
        "Ng^Tiddles", "Siamese", "UNALTERED",
    )  # fmt: skip
    assert (str(cat.ResponsiblePerson), cat.ResponsiblePersonRole) == ("Ng^Mai", "OWNER")
    # A linked study's headers are not what it matches on: its record is.
    _, output, found = findscu(dicom_listener, tmp_path, "-S", "QueryRetrieveLevel=STUDY",
                               "PatientBreedDescription=Beagle", "StudyInstanceUID")  # fmt: skip
    assert found == [], output
    _, output, found = findscu(dicom_listener, tmp_path, "-S", "QueryRetrieveLevel=STUDY",
                               "PatientBreedDescription=Labrador*", "StudyInstanceUID")  # fmt: skip
    assert sorted(ds.StudyInstanceUID for ds in found) == sorted([stored.thorax, stored.abdomen]), output


def test_patient_root_at_every_level(stored, dicom_listener, tmp_path):
    _, output, found = findscu(
        dicom_listener, tmp_path, "-P", "QueryRetrieveLevel=PATIENT", "PatientName", "PatientID",
        "PatientSpeciesDescription", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances",
    )  # fmt: skip
    patients = {str(ds.PatientName): ds for ds in found}
    assert sorted(patients) == ["Hartley^Biscuit", "Ng^Tiddles"], output
    assert (patients["Hartley^Biscuit"].PatientID, patients["Hartley^Biscuit"].NumberOfPatientRelatedStudies) == (
        "PX-1", 2,
    )  # fmt: skip
    assert patients["Hartley^Biscuit"].NumberOfPatientRelatedInstances == 4
    assert (patients["Ng^Tiddles"].PatientID, patients["Ng^Tiddles"].PatientSpeciesDescription) == (
        "EXT-9", "Felis catus",
    )  # fmt: skip

    _, output, found = findscu(dicom_listener, tmp_path, "-P", "QueryRetrieveLevel=STUDY", "PatientID=PX-1",
                               "StudyInstanceUID", "StudyDate")  # fmt: skip
    assert [(ds.StudyInstanceUID, ds.StudyDate) for ds in found] == [
        (stored.thorax, "20250304"), (stored.abdomen, "20240110"),
    ], output  # fmt: skip

    _, output, found = findscu(dicom_listener, tmp_path, "-P", "QueryRetrieveLevel=SERIES", "PatientID=PX-1",
                               f"StudyInstanceUID={stored.thorax}", "SeriesInstanceUID", "Modality",
                               "SeriesNumber", "NumberOfSeriesRelatedInstances")  # fmt: skip
    assert [(ds.SeriesInstanceUID, ds.SeriesNumber, ds.NumberOfSeriesRelatedInstances) for ds in found] == [
        (stored.series[0], 1, 2), (stored.series[1], 2, 1),
    ], output  # fmt: skip

    _, output, found = findscu(dicom_listener, tmp_path, "-P", "QueryRetrieveLevel=IMAGE", "PatientID=PX-1",
                               f"StudyInstanceUID={stored.thorax}", f"SeriesInstanceUID={stored.series[0]}",
                               "SOPInstanceUID", "InstanceNumber", "SOPClassUID", "Rows")  # fmt: skip
    assert [(ds.InstanceNumber, ds.Rows) for ds in found] == [(1, 128), (2, 128)], output
    assert all(ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.SOPInstanceUID for ds in found)


def test_study_root_series_and_image_levels(stored, dicom_listener, tmp_path):
    _, output, found = findscu(dicom_listener, tmp_path, "-S", "QueryRetrieveLevel=SERIES", "Modality=US",
                               "SeriesInstanceUID", "BodyPartExamined")  # fmt: skip
    assert [(ds.SeriesInstanceUID, ds.BodyPartExamined, ds.StudyInstanceUID) for ds in found] == [
        (stored.series[2], "ABDOMEN", stored.abdomen),  # the study's unique key comes with it
    ], output
    _, output, found = findscu(dicom_listener, tmp_path, "-S", "QueryRetrieveLevel=IMAGE",
                               f"StudyInstanceUID={stored.thorax}", "SOPInstanceUID", "InstanceNumber")  # fmt: skip
    assert len(found) == 3 and {ds.SeriesInstanceUID for ds in found} == set(stored.series[:2]), output


def associate(listener, calling="HOROS"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(STUDY_ROOT)
    ae.add_requested_context(PATIENT_ROOT)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")
    assert assoc.is_established
    return assoc


def identifier(**keys):
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def statuses(assoc, query, model=STUDY_ROOT):
    return [
        (status.Status, status.get("ErrorComment"), answer)
        for status, answer in assoc.send_c_find(query, model)
    ]


@pytest.mark.parametrize(
    "keys, model, comment",
    [
        ({"PatientName": "*"}, STUDY_ROOT, "QueryRetrieveLevel is missing"),
        ({"QueryRetrieveLevel": "VISIT", "PatientName": ""}, STUDY_ROOT, "QueryRetrieveLevel 'VISIT' is not a level"),
        ({"QueryRetrieveLevel": "PATIENT", "PatientName": ""}, STUDY_ROOT,
         "QueryRetrieveLevel PATIENT is not in the Study Root model"),
        ({"QueryRetrieveLevel": "STUDY", "SOPInstanceUID": "1.2.3"}, STUDY_ROOT,
         "SOPInstanceUID: a key of the IMAGE level, below STUDY"),
        ({"QueryRetrieveLevel": "PATIENT", "StudyDate": "20250101"}, PATIENT_ROOT,
         "StudyDate: a key of the STUDY level, below PATIENT"),
        ({"QueryRetrieveLevel": "STUDY", "StudyDate": "2025-01-01"}, STUDY_ROOT, "StudyDate: '2025-01-01' is not a range"),
        ({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.x"}, STUDY_ROOT, "StudyInstanceUID: '1.2.x' is not a UID"),
    ],
    ids=["no level", "unknown level", "patient level in study root", "image key at study level",
         "study key at patient level", "malformed date range", "malformed UID"],
)  # fmt: skip
def test_a_bad_identifier_gets_0xa900_with_an_error_comment(stored, dicom_listener, keys, model, comment):
    assoc = associate(dicom_listener)
    answers = statuses(assoc, identifier(**keys), model)
    assoc.release()
    assert [(status, error) for status, error, _ in answers] == [(0xA900, comment)]


def test_a_node_that_may_not_query_is_refused_and_one_that_may_gets_answers(stored, dicom_listener):
    assoc = associate(dicom_listener, calling="DRROOM")
    answers = statuses(assoc, identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=""))
    assoc.release()
    assert [(status, error) for status, error, _ in answers] == [
        (0x0124, "DRROOM may not query here (ask the PACS admin)")
    ]
    assert not AuditEntry.objects.filter(action="query").exists()
    assoc = associate(dicom_listener)
    answers = statuses(assoc, identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=""))
    assoc.release()
    assert [status for status, _, _ in answers] == [0xFF00] * 3 + [0x0000]


def test_the_worklist_is_refused_to_a_node_that_may_not_query_too(nodes, dicom_listener):
    ae = AE(ae_title="DRROOM")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    answers = [(s.Status, s.get("ErrorComment")) for s, _ in assoc.send_c_find(identifier(PatientName="*"),
                                                                                ModalityWorklistInformationFind)]  # fmt: skip
    assoc.release()
    assert answers == [(0x0124, "DRROOM may not query here (ask the PACS admin)")]


def test_a_key_we_do_not_match_on_is_answered_with_pending_ff01(stored, dicom_listener):
    assoc = associate(dicom_listener)
    answers = statuses(assoc, identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=stored.cat,
                                         OperatorsName="Smith*"))  # fmt: skip
    assoc.release()
    assert [status for status, _, _ in answers] == [0xFF01, 0x0000]
    assert answers[0][2].OperatorsName == "" and answers[0][2].StudyInstanceUID == stored.cat


def test_a_c_cancel_stops_the_answers_and_the_next_query_is_answered(reference_data, nodes, dicom_listener):
    Study.objects.bulk_create(
        Study(study_instance_uid=generate_uid(), dicom_patient_name=f"Busy^Dog{i}", dicom_patient_id=f"B{i}")
        for i in range(1500)
    )  # fmt: skip
    assoc = associate(dicom_listener)
    everything = identifier(
        QueryRetrieveLevel="STUDY", PatientName="BUSY*", StudyInstanceUID="", PatientID=""
    )
    pending, final = 0, None
    for status, _ in assoc.send_c_find(everything, STUDY_ROOT, msg_id=7):
        if status.Status in (0xFF00, 0xFF01):
            pending += 1
            if pending == 1:
                assoc.send_c_cancel(7, query_model=STUDY_ROOT)
        else:
            final = status.Status
    assert final == 0xFE00 and 1 <= pending < 1500  # matching terminated due to cancel (C.4.1.2.3)
    answers = statuses(assoc, identifier(QueryRetrieveLevel="STUDY", PatientID="B12*", StudyInstanceUID=""))
    assoc.release()
    assert sorted(str(answer.PatientID) for _, _, answer in answers[:-1]) == sorted(
        f"B{i}" for i in range(1500) if str(i).startswith("12")
    )
    assert answers[-1][0] == 0x0000


@pytest.fixture
def node(settings):
    """Our node in this process, any caller accepted (no database to ask)."""
    settings.DICOM_ALLOW_ANY_AE = True
    ae = ae_build(ae_title="VETPACS", max_pdu=65536)
    server = server_start(ae, ("127.0.0.1", 0))
    yield types.SimpleNamespace(port=server.server_address[1])
    ae.shutdown()
    _config.STORE_RECV_CHUNKED_DATASET = False  # ae_build set it for this process


def test_a_database_that_cannot_answer_gets_0xa700_with_a_comment(node, monkeypatch):
    def down(**_):
        raise OperationalError("connection refused")

    monkeypatch.setattr(handlers_query, "archive_find", down)
    assoc = associate(node)
    answers = statuses(assoc, identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=""))
    assoc.release()
    assert [(status, error) for status, error, _ in answers] == [
        (0xA700, "The archive database is unavailable")
    ]
