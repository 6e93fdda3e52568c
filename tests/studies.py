"""Studies for the reconciliation and study-page tests: index rows built directly, each instance
a real DICOM object (pydicom's bundled CT_small.dcm, re-identified) kept in storage
(tests use the storage_root fixture)."""

import io
from datetime import date
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from imaging.ingest import storage
from imaging.models import Instance, Series, Study

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
DOG = "Canis lupus familiaris"


def stored_object(*, study_uid, series_uid, name, patient_id, species):
    ds = pydicom.dcmread(CT_SMALL)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID = name, patient_id
    if species:
        ds.PatientSpeciesDescription = species
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    key = storage.instance_key(ds.SOPInstanceUID)
    storage.object_put(key, out.getvalue())
    return ds, key, len(out.getvalue())


def make_study(
    *,
    name="Hartley^Biscuit",
    patient_id="",
    species=DOG,
    series=1,
    images=1,
    patient=None,
    link=Study.Link.UNMATCHED,
    description="Thorax",
    study_date=date(2025, 3, 4),
    **fields,
):
    """A study as the ingest would have indexed it, its objects saying what the arguments say."""
    study = Study.objects.create(
        study_instance_uid=generate_uid(), patient=patient, link=link, description=description,
        study_date=study_date, dicom_patient_name=name, dicom_patient_id=patient_id, dicom_species=species,
        accession_number="A1001", **fields,
    )  # fmt: skip
    for number in range(1, series + 1):
        row = Series.objects.create(
            study=study, series_instance_uid=generate_uid(), modality="CT", series_number=number,
            description=f"Series {number}",
        )  # fmt: skip
        for image in range(1, images + 1):
            ds, key, size = stored_object(
                study_uid=study.study_instance_uid, series_uid=row.series_instance_uid,
                name=name, patient_id=patient_id, species=species,
            )  # fmt: skip
            Instance.objects.create(
                series=row, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                transfer_syntax_uid=ds.file_meta.TransferSyntaxUID, instance_number=image,
                rows=ds.Rows, columns=ds.Columns, file_size=size, storage_key=key,
            )  # fmt: skip
    return study


def stored_header(instance):
    instance.refresh_from_db()
    return pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
