"""An archive to query (tests/test_dicom_qr_find.py, tests/test_dicomweb_qido.py), put in through
the ingest path: each object received by instance_receive and indexed (and linked) by
instance_index, as the C-STORE handler and the ingest task do.

- Biscuit (dog, Labrador, neutered, owned by Jo Hartley, Patient ID PX-1): a thorax CT of
  2025-03-04 (two series: two images and one) and an abdomen US of 2024-01-10, linked by Patient
  ID. Their headers say the breed is "Beagle": the record (Labrador) is what answers.
- Tiddles (cat, Siamese, entire, Mai Ng), Patient ID EXT-9: a thorax DX of 2025-06-01 that no
  record matches (unlinked): it answers with its headers.
"""

import types
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging.ingest.index import instance_index
from imaging.ingest.receive import instance_receive
from imaging.models import Instance

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def store(folder: Path, **header: object) -> Instance:
    """One object (pydicom's CT_small.dcm saying ``header``) received and indexed."""
    ds = pydicom.dcmread(CT_SMALL)
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path)
    key = instance_receive(
        source=path, transfer_syntax=ds.file_meta.TransferSyntaxUID, sop_class_uid=ds.SOPClassUID,
        sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM",
    )  # fmt: skip
    return instance_index(storage_key=key, received_from="CTROOM")


@pytest.fixture
def archive(storage_root, tmp_path, make_owner, make_patient, labrador):
    biscuit = make_patient(
        "Biscuit", owner=make_owner("Hartley", given_name="Jo"), breed=labrador, sex="F", neutered="ALTERED",
        patient_id="PX-1",
    )  # fmt: skip
    thorax, abdomen, cat = generate_uid(), generate_uid(), generate_uid()
    series = [generate_uid() for _ in range(4)]
    dog = {"PatientID": "PX-1", "PatientName": "HARTLEY^BISCUIT", "PatientBreedDescription": "Beagle"}
    chest = {"StudyInstanceUID": thorax, "StudyDate": "20250304", "StudyTime": "101500", "AccessionNumber": "A1001",
             "StudyDescription": "Thorax CT", "StudyID": "1", "Modality": "CT", "BodyPartExamined": "CHEST"}  # fmt: skip
    store(tmp_path, **dog, **chest, SeriesInstanceUID=series[0], SeriesNumber=1, InstanceNumber=1)
    store(tmp_path, **dog, **chest, SeriesInstanceUID=series[0], SeriesNumber=1, InstanceNumber=2)
    store(tmp_path, **dog, **chest, SeriesInstanceUID=series[1], SeriesNumber=2, InstanceNumber=1)
    store(
        tmp_path, **dog, StudyInstanceUID=abdomen, StudyDate="20240110", AccessionNumber="A0900",
        StudyDescription="Abdomen US", Modality="US", SeriesInstanceUID=series[2], SeriesNumber=1,
        InstanceNumber=1, BodyPartExamined="ABDOMEN",
    )  # fmt: skip
    store(
        tmp_path, StudyInstanceUID=cat, StudyDate="20250601", AccessionNumber="B2002", StudyDescription="Thorax DX",
        Modality="DX", SeriesInstanceUID=series[3], SeriesNumber=1, InstanceNumber=1, PatientID="EXT-9",
        PatientName="Ng^Tiddles", PatientSex="M", PatientSpeciesDescription="Felis catus",
        PatientBreedDescription="Siamese", PatientSexNeutered="UNALTERED", ResponsiblePerson="Ng^Mai",
        ResponsiblePersonRole="OWNER",
    )  # fmt: skip
    return types.SimpleNamespace(biscuit=biscuit, thorax=thorax, abdomen=abdomen, cat=cat, series=series)
