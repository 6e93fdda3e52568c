"""Orthanc (Debian's 1.10, nobody here wrote it) as a workstation would use VetPACS: it queries
the listener through its own REST API (``/modalities/{id}/query``: a Study Root C-FIND) and
retrieves what it found (``/queries/{id}/retrieve``: a C-MOVE to itself, a registered move
destination). What Orthanc then holds is what VetPACS stored, byte for byte; a study linked to an
animal answers Orthanc with the record's name, not the modality's."""

import io
import json
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging.ingest.storage import object_get
from imaging.models import Instance, Modality
from tests.conftest import tool_required, wait_for

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # bundled: no download


def _dataset_bytes(part10):
    """A Part 10 file's data set, without its preamble and File Meta Information (Orthanc and
    VetPACS may each write their own File Meta; the data set is what must be the same)."""
    fp = io.BytesIO(part10)
    pydicom.filereader.read_preamble(fp, False)
    pydicom.filereader._read_file_meta_info(fp)
    return part10[fp.tell() :]


@pytest.fixture
def stored(reference_data, dicom_listener, celery_worker, storage_root, tmp_path, make_patient, make_owner):
    """Two objects of one study (one JPEG 2000 compressed) sent by a modality through the listener
    and indexed by a worker, of an animal registered as PET-ORTH (so the study links to it)."""
    Modality.objects.create(ae_title="DX1", host="127.0.0.1", modality_type="DX")
    patient = make_patient(name="Biscuit", owner=make_owner(family_name="Hartley"), patient_id="PET-ORTH")
    study_uid = generate_uid()
    files = []
    for name in ("CT_small.dcm", "MR_small_jp2klossless.dcm"):
        ds = pydicom.dcmread(TEST_FILES / name)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
        ds.PatientID, ds.PatientName = "PET-ORTH", "HARTLEY^BISCUIT"  # as a modality types it
        path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path)
        files.append(path)
    sent = subprocess.run(
        [tool_required("/usr/bin/dcmsend"), "-aet", "DX1", "-aec", "VETPACS", "127.0.0.1",
         str(dicom_listener.port), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    wait_for(lambda: Instance.objects.filter(series__study__patient=patient).count() == 2, message="linked")
    return study_uid, Instance.objects.filter(series__study__study_instance_uid=study_uid)


def test_orthanc_queries_and_retrieves_a_study_from_vetpacs(stored, dicom_listener, orthanc_start):
    study_uid, instances = stored
    orthanc = orthanc_start(aet="ORTHANC", peers={"vetpacs": ("VETPACS", "127.0.0.1", dicom_listener.port)})
    # Orthanc is a workstation that may query and retrieve, and where a C-MOVE may send.
    Modality.objects.create(
        ae_title="ORTHANC", host="127.0.0.1", port=orthanc.dicom_port, modality_type="OT",
        may_query=True, may_retrieve=True, move_destination=True,
    )  # fmt: skip

    query_id, answers = orthanc.query(
        "vetpacs", "Study", {"PatientID": "PET-ORTH", "PatientName": "", "ModalitiesInStudy": ""}
    )
    assert len(answers) == 1
    assert answers[0]["StudyInstanceUID"] == study_uid
    assert answers[0]["PatientName"] == "Hartley^Biscuit"  # the record's spelling, not the headers'
    assert set(answers[0]["ModalitiesInStudy"].split("\\")) == {"CT", "MR"}

    orthanc.retrieve(query_id)

    kept = {}
    for instance_id in orthanc.get("/instances"):
        status, _, body = orthanc.request("GET", f"/instances/{instance_id}/file")
        assert status == 200
        kept[pydicom.dcmread(io.BytesIO(body), stop_before_pixels=True).SOPInstanceUID] = body
    assert set(kept) == {i.sop_instance_uid for i in instances}
    for instance in instances:
        assert _dataset_bytes(kept[instance.sop_instance_uid]) == _dataset_bytes(
            object_get(instance.storage_key)
        )


def test_a_node_vetpacs_does_not_know_gets_nothing(stored, dicom_listener, orthanc_start):
    orthanc = orthanc_start(aet="STRANGER", peers={"vetpacs": ("VETPACS", "127.0.0.1", dicom_listener.port)})
    status, _, body = orthanc.request(
        "POST",
        "/modalities/vetpacs/query",
        json.dumps({"Level": "Study", "Query": {"PatientID": "PET-ORTH"}}).encode(),
    )
    assert status >= 400, body  # the association is rejected, so Orthanc's query fails
    assert orthanc.count() == 0
